"""The attempt loop: which deployments a call may use, in what order, how often each is tried, and when to give up.

    decide()  constraints (routing/engine/constraints.py) drop what this request cannot use, each with its reason;
              the alias's strategy (routing/engine/strategies.py) orders the rest. Explain stops here.
    run()     tries them in order: fail-over to the next is immediate; when every candidate failed and the
              alias's attempt budget allows, another round after a backoff with full jitter (or the provider's
              Retry-After); then the alias's fallbacks, each with its own candidates. Breakers
              (routing/engine/breaker.py) skip deployments that keep failing; one deadline bounds it all.

Nothing else in the project walks deployments. An attempt is retried only when it provably produced nothing
billable (UpstreamError.is_retryable) or it was refused for its context length, so no call is billed twice;
a stream is retried only before it opens (the pipeline relays it afterwards). Django-free: it takes plain
snapshot values and is given its clock, sleep and random source, so every path is deterministic under test.
"""

import asyncio
import random
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

from core.errors import UpstreamError
from core.values import DEFAULT_POLICY, Attempt, Decision, RoutingPolicy, SemanticChoice, Skip, Target
from routing.engine import cascade, constraints, experiments, retry, semantic, strategies
from routing.engine.bandit import BanditBoard
from routing.engine.breaker import BreakerBoard
from routing.engine.constraints import Needs
from routing.engine.latency import LatencyBoard
from routing.engine.strategies import RoutingState

T = TypeVar("T")

# How long a 429 without Retry-After keeps a deployment aside: long enough not to hammer it, short enough
# that a quota reset is noticed.
DEFAULT_HOLD_S = 1.0
# Providers say "context" in their own words; a 400 saying so is a reason to try a larger window.
_CONTEXT_WORDS = re.compile(
    r"context[ _-]?length|context window|maximum context|prompt is too long|too many tokens|input is too long"
    r"|exceeds the maximum number of tokens",
    re.IGNORECASE,
)


class RoutingFailed(Exception):
    """No deployment produced an answer. `last` is the error to report (None: nothing could be tried, see
    the decision's skips); the decision says what was tried."""

    def __init__(self, last: UpstreamError | None, decision: Decision) -> None:
        super().__init__(last.message if last else "no deployment could be tried")
        self.last = last
        self.decision = decision

    @property
    def all_timed_out(self) -> bool:
        errors = [a.error for a in self.decision.attempts]
        return bool(errors) and all(e == "timeout" for e in errors)


@dataclass(slots=True)
class Route:
    """One alias's candidates, in the order they will be tried."""

    alias: str
    policy: RoutingPolicy
    targets: list[Target]


@dataclass(slots=True)
class Plan:
    decision: Decision
    routes: list[Route]  # the alias's own first, then its fallbacks
    deadline_ms: int
    needs: Needs


def is_context_length_error(error: UpstreamError) -> bool:
    if error.status != 400:
        return False
    return error.code == "context_length_exceeded" or bool(_CONTEXT_WORDS.search(error.message or ""))


@dataclass
class Engine:
    """One per process: the breakers, latency averages and counters the strategies read."""

    breakers: BreakerBoard = field(default_factory=BreakerBoard)
    latency: LatencyBoard = field(default_factory=LatencyBoard)
    bandit: BanditBoard = field(default_factory=BanditBoard)  # observe() here: feedback, cascade checks
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    # deployment's provider quota check (rpm-limit / tpm-limit / None), given by whoever counts it
    over_quota: Callable[[Target], str | None] = lambda target: None
    # told of every attempt and its estimated tokens, so provider quotas count it (same owner as over_quota)
    count_attempt: Callable[[Target, int], None] = lambda target, tokens: None
    state: RoutingState = field(init=False)

    def __post_init__(self) -> None:
        self.state = RoutingState(round_robin={}, in_flight={}, latency=self.latency, bandit=self.bandit)

    # --- deciding ----------------------------------------------------------------------------------------------

    def decide(
        self,
        alias: str,
        *,
        aliases: Mapping[str, tuple[Target, ...]],
        policies: Mapping[str, RoutingPolicy],
        needs: Needs,
        semantic_choice: SemanticChoice | None = None,
    ) -> Plan:
        """Candidates for the alias and its fallbacks, each alias ordered by its own strategy. Pure but for the
        strategies' turn counters and random draws: explain calls it too. A semantic alias's choice is given by
        the gateway, which embedded the prompt off the event loop; without it, it is made here (explain, bench)."""
        policy = policies.get(alias, DEFAULT_POLICY)
        decision = Decision(alias=alias, strategy=policy.strategy)
        routes = []
        for index, name in enumerate(dict.fromkeys((alias, *policy.fallbacks))):
            targets = aliases.get(name)
            if not targets:
                continue  # a fallback removed from the catalogue since: skipped, as an empty alias would be
            route_policy = policies.get(name, DEFAULT_POLICY)
            # The stricter of the alias's floor and the caller's (x-tollway-min-quality may only raise it).
            floors = [f for f in (needs.min_quality, route_policy.min_quality) if f is not None]
            route_needs = replace(needs, min_quality=max(floors)) if floors else needs
            # A learned alias's floor is for its predictions (strategies.order), not the static quality.
            is_learned = strategies.is_learned_with_model(route_policy)
            usable, skipped = constraints.eligible(
                targets,
                replace(route_needs, min_quality=None) if is_learned else route_needs,
                is_open=lambda deployment, p=route_policy: self.breakers.is_open(deployment, p.breaker),
                over_quota=self.over_quota,
            )
            # A deployment kept aside for its provider's Retry-After is not broken: say which it is.
            decision.skipped.extend(
                Skip(s.deployment, "retry-after", "held for its Retry-After")
                if s.reason == "breaker-open" and self.breakers.held_for(s.deployment)
                else s
                for s in skipped
            )
            if index == 0 and route_policy.strategy == "semantic" and route_policy.semantic is not None:
                choice = semantic_choice or semantic.choose(route_policy.semantic, route_needs.routing_text)
                decision.semantic = choice
                ordered, reason, estimates = self._semantic_order(
                    choice, targets, usable, aliases=aliases, policies=policies, needs=needs, decision=decision
                )
                if not ordered:
                    continue
            elif not usable:
                continue
            else:
                ordered, reason, estimates = strategies.order(
                    usable, alias=name, policy=route_policy, needs=route_needs, rng=self.rng, state=self.state
                )
            if index == 0 and route_policy.experiment is not None:
                ordered, reason = self._experiment(ordered, reason, route_policy, route_needs, decision)
            if index == 0:
                decision.reason = reason
            decision.estimates.update(estimates)
            decision.candidates.extend(t.deployment for t in ordered)
            routes.append(Route(alias=name, policy=route_policy, targets=list(ordered)))
        return Plan(decision=decision, routes=routes, deadline_ms=policy.retry.deadline_ms, needs=needs)

    def _eligible(self, alias_policy: RoutingPolicy, targets, needs: Needs):
        floors = [f for f in (needs.min_quality, alias_policy.min_quality) if f is not None]
        return constraints.eligible(
            targets,
            replace(needs, min_quality=max(floors)) if floors else needs,
            is_open=lambda deployment: self.breakers.is_open(deployment, alias_policy.breaker),
            over_quota=self.over_quota,
        )

    def _semantic_order(self, choice: SemanticChoice, targets, usable, *, aliases, policies, needs, decision):
        """The semantic choice's target first (routing/engine/semantic.py says the rule), then the alias's own
        eligible deployments in their listed order."""
        reason = semantic.reason(choice)
        head: list[Target] = []
        estimates: dict[str, str] = {}
        own = {t.deployment for t in targets}
        if choice.target in own:
            head = [t for t in usable if t.deployment == choice.target]
            if not head:
                reason = f"{reason}; {choice.target} skipped"
        elif choice.target:
            other_policy = policies.get(choice.target, DEFAULT_POLICY)
            other_usable, skipped = self._eligible(other_policy, aliases.get(choice.target, ()), needs)
            decision.skipped.extend(skipped)
            if other_policy.strategy in ("semantic", "cascade"):
                head = other_usable  # no nesting: listed order
            elif other_usable:
                head, _, estimates = strategies.order(
                    other_usable, alias=choice.target, policy=other_policy, needs=needs, rng=self.rng, state=self.state
                )
            reason = f"{reason}; via alias {choice.target}" if head else f"{reason}; alias {choice.target}: none usable"
        taken = {t.deployment for t in head}
        return [*head, *(t for t in usable if t.deployment not in taken)], reason, estimates

    def _experiment(self, ordered, reason: str, policy: RoutingPolicy, needs: Needs, decision: Decision):
        """The experiment's arm goes first (routing/engine/experiments.py): a layer above the strategy."""
        experiment = policy.experiment
        # Named even when the call gets no arm: a comparison counts the calls the strategy alone routed too.
        decision.experiment = experiment.name
        ordered, decision.arm = experiments.apply(ordered, experiment, user=needs.user, rng=self.rng)
        if not decision.arm:
            return ordered, reason
        said = f"experiment {experiment.name}: {decision.arm}"
        return ordered, f"{said}; {reason}" if reason else said

    # --- trying ------------------------------------------------------------------------------------------------

    async def run(
        self, plan: Plan, call: Callable[[Target], Awaitable[T]], *, cascade_hooks: "cascade.CascadeHooks | None" = None
    ) -> tuple[T, Target]:
        """Try the plan's candidates until one answers; raises RoutingFailed with the decision filled in."""
        decision = plan.decision
        if cascade_hooks is not None and _is_cascade(plan):
            return await cascade.run(self, plan, call, cascade_hooks)
        deadline = retry.Deadline(plan.deadline_ms, clock=self.clock)
        last: UpstreamError | None = None
        for route in plan.routes:
            if route.alias != decision.alias:
                if deadline.expired:
                    break
                decision.fallback_aliases.append(route.alias)
            result, last_here = await self._run_route(route, plan, deadline, call)
            if result is not None:
                return result
            last = last_here or last
            if last is not None and not may_fail_over(last):
                break  # the request itself was refused: another alias would refuse it too
        raise RoutingFailed(last, decision)

    async def _run_route(self, route: Route, plan: Plan, deadline, call):
        decision, policy = plan.decision, route.policy
        tokens = plan.needs.prompt_tokens + plan.needs.output_tokens
        budget = policy.retry.max_attempts or len(route.targets)
        remaining = list(route.targets)
        tried = 0
        retry_round = 0
        waited_ms = 0.0
        last: UpstreamError | None = None
        while remaining and tried < budget and not deadline.expired:
            if retry_round:
                wait_ms = self._wait_before_round(retry_round, policy, remaining, deadline)
                if wait_ms is None:
                    break
                await self.sleep(wait_ms / 1000)
                waited_ms = wait_ms
            queue = deque(remaining)
            failed_again: list[Target] = []
            while queue and tried < budget and not deadline.expired:
                target = queue.popleft()
                if not self.breakers.acquire(target.deployment, policy.breaker):
                    reason = "retry-after" if self.breakers.held_for(target.deployment) else "breaker-open"
                    decision.skipped.append(Skip(target.deployment, reason, "at attempt time"))
                    continue
                tried += 1
                self.count_attempt(target, tokens)
                outcome, error = await self._attempt(target, route.alias, decision, call, policy, waited_ms)
                waited_ms = 0.0
                if error is None:
                    return (outcome, target), None
                last = error
                if is_context_length_error(error):
                    # Only a larger window can take it: drop the ones no larger than this one, for good.
                    window = target.context_window
                    queue = deque(t for t in queue if window is None or (t.context_window or 0) > window)
                    failed_again = [t for t in failed_again if window is None or (t.context_window or 0) > window]
                    continue
                if not error.is_retryable:
                    return None, error
                failed_again.append(target)
            remaining = failed_again
            retry_round += 1
        return None, last

    async def run_step(self, route: Route, target: Target, plan: Plan, deadline, call):
        """A cascade's step: one deployment, with the route's retry rules. ((result, target), None) or (None, error)."""
        return await self._run_route(Route(route.alias, route.policy, [target]), plan, deadline, call)

    def _wait_before_round(self, retry_round, policy: RoutingPolicy, remaining, deadline) -> float | None:
        """The backoff before trying the same deployments again, or None when the deadline would pass first."""
        wait_ms = retry.backoff_ms(retry_round, policy.retry, self.rng)
        holds = [self.breakers.held_for(t.deployment) * 1000 for t in remaining]
        if holds and all(holds):
            wait_ms = max(wait_ms, min(holds))  # every candidate asked us to wait: the first to come back
        if wait_ms >= deadline.remaining_ms():
            return None
        return wait_ms

    async def _attempt(self, target: Target, alias: str, decision: Decision, call, policy: RoutingPolicy, waited_ms):
        in_flight = self.state.in_flight
        in_flight[target.deployment] = in_flight.get(target.deployment, 0) + 1
        started = self.clock()
        try:
            result = await call(target)
        except UpstreamError as error:
            latency_ms = (self.clock() - started) * 1000
            decision.attempts.append(
                Attempt(target.deployment, alias, error.status, _error_name(error), round(latency_ms, 3), waited_ms)
            )
            self._learn_from(target, error, policy)
            if policy.strategy == "bandit" and may_fail_over(error):
                self.bandit.observe(alias, target.deployment, 0.0, policy=policy.bandit)  # errored: the worst reward
            return None, error
        except BaseException:
            # Cancelled (the client went away) or our own bug: the deployment did nothing wrong.
            decision.attempts.append(
                Attempt(
                    target.deployment, alias, None, "cancelled", round((self.clock() - started) * 1000, 3), waited_ms
                )
            )
            raise
        finally:
            in_flight[target.deployment] -= 1
        latency_ms = (self.clock() - started) * 1000
        decision.attempts.append(Attempt(target.deployment, alias, 200, "", round(latency_ms, 3), waited_ms))
        self.breakers.record(target.deployment, policy.breaker, ok=True)
        self.latency.observe(target.deployment, latency_ms=latency_ms)
        return result, None

    def _learn_from(self, target: Target, error: UpstreamError, policy: RoutingPolicy) -> None:
        if error.status == 429:
            wait_s = retry.parse_retry_after(error.retry_after, now_wall=time.time())
            self.breakers.hold(target.deployment, wait_s if wait_s is not None else DEFAULT_HOLD_S)
        elif error.is_timeout or error.status is None or error.status >= 500:
            self.breakers.record(target.deployment, policy.breaker, ok=False)

    def report_stream_end(self, target: Target, policy: RoutingPolicy, *, ok: bool, latency_ms, ttfb_ms) -> None:
        """A stream the pipeline relayed ended: its breaker and latency learn how it went."""
        self.breakers.record(target.deployment, policy.breaker, ok=ok)
        if ok and latency_ms is not None:
            self.latency.observe(target.deployment, latency_ms=latency_ms, ttfb_ms=ttfb_ms)


def _is_cascade(plan: Plan) -> bool:
    first = plan.routes[0] if plan.routes else None
    return first is not None and first.alias == plan.decision.alias and first.policy.cascade is not None


def may_fail_over(error: UpstreamError) -> bool:
    return error.is_retryable or is_context_length_error(error) or error.status == 429


def _error_name(error: UpstreamError) -> str:
    if error.is_timeout:
        return "timeout"
    return (error.code or error.error_type or "upstream_error")[:64]
