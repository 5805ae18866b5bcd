"""The cascade strategy's climb: try the cheapest step, keep its answer when every check passes, else escalate;
the last step's answer is final and unchecked. Called from Engine.run (routing/engine/router.py).

    step 1 (held)  -> checks pass? -> that answer          a step that errors: its retries and fail-over
    step 2 (held)  -> checks pass? -> that answer          follow part 1's rules (Engine.run_step), then the
    ...                                                    climb goes on to the next step
    last step      -> its answer, as it comes (a stream is relayed straight through)

Every answered step is billed: the caller's `hold` hands back its tokens, and `discarded` lists the steps whose
answers were not used, for the one usage record to add. `max_cost_usd` stops the climb before a step that would
take the spend past it (spent so far + the step's estimated cost); the best answer so far (fewest failed checks,
later step on a tie) is then final, as it is when the last step fails. The decision's `checks` say, per step,
what failed, so x-tollway-route and the usage record explain the climb.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from core.errors import UpstreamError
from core.values import Target, TokenUsage
from routing.engine import checks, retry
from routing.engine.strategies import DEFAULT_EXPECTED_OUTPUT_TOKENS, estimated_cost, format_dollars

if TYPE_CHECKING:
    from routing.engine.router import Engine, Plan

# result, target -> (the result to hand on, the answer the checks read, the tokens it cost)
Hold = Callable[[Any, Target], Awaitable[tuple[Any, checks.Answer, TokenUsage]]]


@dataclass
class CascadeHooks:
    """What the pipeline gives a cascaded call: how to hold a step's answer, and what the checks may use."""

    hold: Hold
    context: checks.CheckContext
    cost_of: Callable[[TokenUsage, Target], Decimal]  # billing's price of a step, so the climb knows its spend
    discarded: list[tuple[TokenUsage, Target]] = field(default_factory=list)  # filled in: billed, not used


@dataclass(slots=True)
class _Held:
    result: Any
    target: Target
    tokens: TokenUsage
    failed: list[checks.Outcome]
    index: int
    is_broken: bool = False


async def run(engine: "Engine", plan: "Plan", call, hooks: CascadeHooks):
    from routing.engine.router import RoutingFailed, may_fail_over

    decision, route = plan.decision, plan.routes[0]
    cascade = route.policy.cascade
    steps = route.targets  # the eligible steps, in step order (strategies.order)
    experiment = ""
    if decision.arm and route.policy.experiment is not None:
        # An experiment's arm is where this call's climb starts (the engine put it first): that step, then the
        # dearer ones, never back down to a cheaper step the arm was meant to skip.
        experiment = f"experiment {route.policy.experiment.name}: {decision.arm}"
        rank = {name: i for i, name in enumerate(cascade.steps)}
        start = rank.get(decision.arm, -1)
        steps = [steps[0], *(t for t in steps[1:] if rank.get(t.deployment, -1) > start)]
    deadline = retry.Deadline(plan.deadline_ms, clock=engine.clock)
    output_tokens = plan.needs.output_tokens or DEFAULT_EXPECTED_OUTPUT_TOKENS
    held: list[_Held] = []
    spent = Decimal(0)
    last_error: UpstreamError | None = None
    for index, target in enumerate(steps):
        is_last = index == len(steps) - 1
        label = f"step {index + 1} of {len(steps)}: {target.deployment}"
        if index and cascade.max_cost_usd is not None:
            estimate = estimated_cost(target, prompt_tokens=plan.needs.prompt_tokens, output_tokens=output_tokens)
            if spent + estimate > cascade.max_cost_usd:
                decision.checks.append(
                    {
                        "step": target.deployment,
                        "stopped": "max_cost_usd",
                        "detail": f"spent {format_dollars(spent)} + est. {format_dollars(estimate)} > "
                        f"{format_dollars(cascade.max_cost_usd)}",
                    }
                )
                break
        if deadline.expired:
            break
        outcome, error = await engine.run_step(route, target, plan, deadline, call)
        if outcome is None:
            last_error = error or last_error
            why = (error.code or error.error_type or "failed")[:64] if error else "not tried"
            decision.checks.append({"step": target.deployment, "error": why})
            if error is not None and not may_fail_over(error):
                break  # the request itself was refused: a dearer step would refuse it too
            continue
        result, target = outcome
        if is_last:
            _finish(decision, label, held, experiment)
            hooks.discarded.extend((h.tokens, h.target) for h in held)
            return result, target
        result, answer, tokens = await hooks.hold(result, target)
        spent += hooks.cost_of(tokens, target)
        if answer.too_long:
            # Cut off at the hold cap: the checks would judge half an answer (and a verifier be paid to).
            outcomes = [checks.Outcome("too-long-to-hold", False, answer.too_long[:120])]
        else:
            outcomes = await checks.run_checks(cascade.checks, answer, hooks.context)
        if answer.error:
            outcomes.append(checks.Outcome("stream", False, answer.error[:120]))
        failed = [o for o in outcomes if not o.ok]
        decision.checks.append(
            {
                "step": target.deployment,
                "passed": not failed,
                "failed": [o.type for o in failed],
                "details": {o.type: o.detail for o in outcomes if o.detail},
            }
        )
        step = _Held(result, target, tokens, failed, index, is_broken=bool(answer.error or answer.too_long))
        if failed and route.policy.strategy == "bandit":
            # A bandit that climbs on checks: a failed check is its automatic signal, this arm's worst reward.
            engine.bandit.observe(route.alias, target.deployment, 0.0, policy=route.policy.bandit)
        if not failed:
            _finish(decision, label, held, experiment)
            hooks.discarded.extend((h.tokens, h.target) for h in held)
            return result, target
        held.append(step)
    usable = [h for h in held if not h.is_broken]
    if not usable:
        hooks.discarded.extend((h.tokens, h.target) for h in held)
        if len(plan.routes) > 1:
            # No step answered: the alias's fallbacks, as any alias's.
            return await engine.run(plan.__class__(decision, plan.routes[1:], plan.deadline_ms, plan.needs), call)
        raise RoutingFailed(last_error, decision)
    best = min(usable, key=lambda h: (len(h.failed), -h.index))
    label = f"step {best.index + 1} of {len(steps)}: {best.target.deployment}, best so far"
    _finish(decision, label, [h for h in held if h is not best], experiment)
    hooks.discarded.extend((h.tokens, h.target) for h in held if h is not best)
    return best.result, best.target


def _finish(decision, label: str, failed_steps: list[_Held], experiment: str = "") -> None:
    """The short why for x-tollway-route: the experiment's arm, if any, which step answered, and what the ones
    below it failed."""
    parts = [experiment, label] if experiment else [label]
    for step in failed_steps:
        parts.append(f"{step.target.deployment} failed {', '.join(o.type for o in step.failed)}")
    stopped = [c for c in decision.checks if c.get("stopped")]
    if stopped:
        parts.append("max_cost_usd stopped the climb")
    decision.reason = "; ".join(parts)
