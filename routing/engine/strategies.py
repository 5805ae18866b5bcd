"""In what order to try an alias's eligible deployments, by its policy's strategy. Every given target comes back:
the router tries the first and fails over down the list. Pure but for RoutingState (the round-robin turn, which
the router owns with the calls in flight and the latency board) and the random.Random it is handed.
"""

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from core.values import PART_TWO_STRATEGIES, BanditPolicy, LearnedPolicy, RoutingPolicy, Target
from routing.engine import bandit, learned
from routing.engine.bandit import BanditBoard
from routing.engine.constraints import Needs
from routing.engine.latency import LatencyBoard

DEFAULT_EXPECTED_OUTPUT_TOKENS = 256  # a request that does not say how much output it wants is priced at this
EXPLORE_UNKNOWN_SHARE = 0.05  # lowest-latency: how often a deployment without samples is tried first

Ordered = tuple[list[Target], str, dict[str, str]]  # (targets in order, reason, estimates per deployment)


def estimated_cost(target: Target, *, prompt_tokens: int, output_tokens: int) -> Decimal:
    price = target.price
    total = prompt_tokens * price.input_per_million + output_tokens * price.output_per_million
    return total / 1_000_000


@dataclass
class RoutingState:
    """Per-process state the strategies read (passed in; the router owns one)."""

    round_robin: dict[str, int] = field(default_factory=dict)  # alias -> next index
    in_flight: dict[str, int] = field(default_factory=dict)  # deployment -> calls in flight in this process
    latency: LatencyBoard = field(default_factory=LatencyBoard)
    bandit: BanditBoard = field(default_factory=BanditBoard)


def order(
    targets: Sequence[Target],
    *,
    alias: str,
    policy: RoutingPolicy,
    needs: Needs,
    rng: random.Random,
    state: RoutingState,
) -> Ordered:
    """(targets in the order to try, the short reason for x-tollway-route, what each was ranked by)."""
    targets = list(targets)
    if not targets:
        return [], "", {}
    strategy = policy.strategy
    if strategy == "cascade" and policy.cascade is not None:
        return _cascade_steps(targets, policy)
    if strategy == "learned":
        return _learned(targets, policy.learned or LearnedPolicy(), needs)
    if strategy in PART_TWO_STRATEGIES:
        # semantic is ordered by router.Engine.decide, which has the other aliases a route may point at.
        return targets, "part 2: priority order", {}
    by_strategy: dict[str, Callable[[], Ordered]] = {
        "priority": lambda: (targets, "", {}),
        "cheapest": lambda: _cheapest(targets, needs),
        "lowest-latency": lambda: _lowest_latency(targets, needs, rng, state.latency),
        "weighted": lambda: _weighted(targets, policy, rng),
        "round-robin": lambda: _round_robin(targets, alias, state.round_robin),
        "least-busy": lambda: _least_busy(targets, state.in_flight),
        "bandit": lambda: bandit.order_targets(
            targets, alias=alias, policy=policy.bandit or BanditPolicy(), rng=rng, board=state.bandit
        ),
    }
    if strategy not in by_strategy:
        # The policy parser admits only known strategies; should one slip through, the call still goes out.
        return targets, "unknown strategy: priority order", {}
    return by_strategy[strategy]()


def _cascade_steps(targets: list[Target], policy: RoutingPolicy) -> Ordered:
    # Only the steps, in their order: the alias's other deployments are not part of the climb.
    by_name = {t.deployment: t for t in targets}
    steps = [by_name[name] for name in policy.cascade.steps if name in by_name]
    return steps, f"{len(steps)} steps", {}


def _learned(targets: list[Target], spec: LearnedPolicy, needs: Needs) -> Ordered:
    if spec.model is None:
        return targets, "no trained model yet: priority order", {}
    output_tokens = needs.output_tokens or DEFAULT_EXPECTED_OUTPUT_TOKENS
    costs = [estimated_cost(t, prompt_tokens=needs.prompt_tokens, output_tokens=output_tokens) for t in targets]
    return learned.choose(
        targets, spec.model, text=needs.routing_text, floor=needs.min_quality, trade_off=spec.trade_off, costs=costs
    )


def is_learned_with_model(policy: RoutingPolicy) -> bool:
    """A learned alias with a model applies its floor to predictions, not to the catalogue's static quality."""
    return policy.strategy == "learned" and policy.learned is not None and policy.learned.model is not None


def _cheapest(targets: list[Target], needs: Needs) -> Ordered:
    output_tokens = needs.output_tokens or DEFAULT_EXPECTED_OUTPUT_TOKENS
    costs = [estimated_cost(t, prompt_tokens=needs.prompt_tokens, output_tokens=output_tokens) for t in targets]
    ranked = sorted(range(len(targets)), key=lambda i: (costs[i], i))
    estimates = {targets[i].deployment: format_dollars(costs[i]) for i in ranked}
    return [targets[i] for i in ranked], f"est. {format_dollars(costs[ranked[0]])}", estimates


def _lowest_latency(targets: list[Target], needs: Needs, rng: random.Random, board: LatencyBoard) -> Ordered:
    measured = [board.estimate_ms(t.deployment, stream=needs.stream) for t in targets]
    known = sorted((i for i, ms in enumerate(measured) if ms is not None), key=lambda i: (measured[i], i))
    unknown = [i for i, ms in enumerate(measured) if ms is None]
    # Known ones first, or a slow deployment would be tried as often as a fast one; but an unknown one is never
    # measured unless it is sometimes tried first.
    if known and unknown and rng.random() < EXPLORE_UNKNOWN_SHARE:
        explored = rng.choice(unknown)
        ranked = [explored, *known, *(i for i in unknown if i != explored)]
    else:
        ranked = known + unknown
    estimates = {
        targets[i].deployment: "no samples" if measured[i] is None else f"{measured[i]:.0f} ms" for i in ranked
    }
    first = measured[ranked[0]]
    reason = "no samples yet" if first is None else f"ewma {first:.0f} ms"
    if first is None and known:
        reason = "exploring: no samples yet"
    return [targets[i] for i in ranked], reason, estimates


def _weighted(targets: list[Target], policy: RoutingPolicy, rng: random.Random) -> Ordered:
    weights = [max(policy.weight_of(t.deployment), 0.0) for t in targets]
    total = sum(weights)
    remaining = [i for i, w in enumerate(weights) if w > 0]
    ranked = []
    # Drawn one by one without replacement: the first is weighted random, and so is each fail-over after it.
    while remaining:
        ranked.append(_draw(remaining, weights, rng))
        remaining.remove(ranked[-1])
    ranked += [i for i, w in enumerate(weights) if w <= 0]
    estimates = {targets[i].deployment: f"weight {_plain(weights[i])}" for i in ranked}
    first = ranked[0]
    reason = f"weight {_plain(weights[first])}/{_plain(total)}" if total > 0 else "no weights: priority order"
    return [targets[i] for i in ranked], reason, estimates


def _draw(indexes: list[int], weights: list[float], rng: random.Random) -> int:
    point = rng.random() * sum(weights[i] for i in indexes)
    for i in indexes:
        point -= weights[i]
        if point < 0:
            return i
    return indexes[-1]  # float rounding left the point at the very end


def _round_robin(targets: list[Target], alias: str, turns: dict[str, int]) -> Ordered:
    # Modulo the list as it is now: skips change its length from one call to the next.
    turn = turns.get(alias, 0) % len(targets)
    turns[alias] = (turn + 1) % len(targets)
    return targets[turn:] + targets[:turn], f"turn {turn + 1} of {len(targets)}", {}


def _least_busy(targets: list[Target], in_flight: dict[str, int]) -> Ordered:
    busy = [in_flight.get(t.deployment, 0) for t in targets]
    ranked = sorted(range(len(targets)), key=lambda i: (busy[i], i))
    estimates = {targets[i].deployment: f"{busy[i]} in flight" for i in ranked}
    return [targets[i] for i in ranked], f"{busy[ranked[0]]} in flight", estimates


def format_dollars(amount: Decimal) -> str:
    """An estimate to read, not to bill: under a dollar to 3 significant digits ("$0.000123", "$0.0011"),
    above it to the cent."""
    if amount == 0:
        return "$0"
    if abs(amount) >= 1:
        return f"${amount.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)}"
    step = Decimal(1).scaleb(amount.adjusted() - 2)
    rounded = amount.quantize(step, rounding=ROUND_HALF_UP)
    return f"${rounded.normalize():f}"


def _plain(weight: float) -> str:
    return f"{weight:g}"
