"""The attempt loop (routing/engine/router.py), with a fake clock, a fake sleep and a seeded random source."""

import asyncio
import random
from decimal import Decimal

import pytest

from core.errors import UpstreamError
from core.values import BreakerPolicy, ModelPrice, RetryPolicy, RoutingPolicy, Target
from routing.engine.breaker import BreakerBoard
from routing.engine.constraints import Needs
from routing.engine.latency import LatencyBoard
from routing.engine.router import Engine, RoutingFailed

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def target(name: str, *, price: str = "1", context_window: int | None = None, **fields) -> Target:
    return Target(
        deployment=name,
        provider="p",
        kind="openai",
        base_url="http://127.0.0.1:9",
        model=name,
        price=ModelPrice(Decimal(price), Decimal(price)),
        context_window=context_window,
        **fields,
    )


def engine_at(time: FakeTime, seed: int = 7) -> Engine:
    return Engine(
        breakers=BreakerBoard(clock=time.clock, wall=time.clock),
        latency=LatencyBoard(clock=time.clock),
        rng=random.Random(seed),
        clock=time.clock,
        sleep=time.sleep,
    )


def failing(status: int, *, retry_after: str | None = None, code: str | None = None, message: str = "boom"):
    return UpstreamError(
        message,
        status=status,
        code=code,
        is_retryable=status in (408, 409, 429, 500, 502, 503, 504),
        retry_after=retry_after,
    )


class Upstreams:
    """Each deployment answers from its script (an exception to raise, or "ok"), the last entry repeating."""

    def __init__(self, time: FakeTime, scripts: dict[str, list], *, latency_s: float = 0.01) -> None:
        self.time, self.scripts, self.latency_s = time, scripts, latency_s
        self.calls: list[str] = []

    async def __call__(self, chosen: Target):
        self.calls.append(chosen.deployment)
        script = self.scripts[chosen.deployment]
        outcome = script.pop(0) if len(script) > 1 else script[0]
        self.time.now += self.latency_s
        if isinstance(outcome, BaseException):
            raise outcome
        return f"answer from {chosen.deployment}"


async def run(engine: Engine, targets, upstreams, *, policy=RoutingPolicy(), needs=Needs(), aliases=None):
    aliases = aliases or {"smart": tuple(targets)}
    policies = {"smart": policy}
    plan = engine.decide("smart", aliases=aliases, policies=policies, needs=needs)
    return plan, await engine.run(plan, upstreams)


async def test_the_first_deployment_in_priority_order_answers_in_one_attempt():
    time = FakeTime()
    upstreams = Upstreams(time, {"a": ["ok"], "b": ["ok"]})
    plan, (answer, answered) = await run(engine_at(time), [target("a"), target("b")], upstreams)
    assert (answer, answered.deployment, upstreams.calls) == ("answer from a", "a", ["a"])
    assert plan.decision.strategy == "priority"
    assert [(a.deployment, a.status, a.error) for a in plan.decision.attempts] == [("a", 200, "")]
    assert plan.decision.route_header() == "priority"


async def test_a_retryable_failure_fails_over_to_the_next_deployment_at_once():
    time = FakeTime()
    upstreams = Upstreams(time, {"a": [failing(503)], "b": ["ok"]})
    plan, (_, answered) = await run(engine_at(time), [target("a"), target("b")], upstreams)
    assert answered.deployment == "b" and upstreams.calls == ["a", "b"]
    assert time.slept == []  # fail-over to another deployment does not wait
    assert [a.status for a in plan.decision.attempts] == [503, 200]


async def test_a_client_error_stops_without_trying_another_deployment():
    time = FakeTime()
    upstreams = Upstreams(time, {"a": [failing(400, message="bad tool schema")], "b": ["ok"]})
    with pytest.raises(RoutingFailed) as failure:
        await run(engine_at(time), [target("a"), target("b")], upstreams)
    assert upstreams.calls == ["a"]
    assert failure.value.last.status == 400


async def test_a_context_length_error_fails_over_to_a_larger_window_only():
    time = FakeTime()
    too_long = failing(400, code="context_length_exceeded", message="maximum context length is 8192 tokens")
    upstreams = Upstreams(time, {"small": [too_long], "same": ["ok"], "large": ["ok"]})
    targets = [
        target("small", context_window=8192),
        target("same", context_window=8192),
        target("large", context_window=128000),
    ]
    plan, (_, answered) = await run(engine_at(time), targets, upstreams)
    assert answered.deployment == "large" and upstreams.calls == ["small", "large"]


async def test_the_same_deployment_is_retried_after_a_jittered_backoff_within_the_attempt_budget():
    time = FakeTime()
    upstreams = Upstreams(time, {"only": [failing(503), failing(503), "ok"]})
    policy = RoutingPolicy(retry=RetryPolicy(max_attempts=3, base_delay_ms=100, max_delay_ms=2000))
    plan, (_, answered) = await run(engine_at(time), [target("only")], upstreams, policy=policy)
    assert upstreams.calls == ["only", "only", "only"]
    assert len(time.slept) == 2
    assert 0 <= time.slept[0] <= 0.1 and 0 <= time.slept[1] <= 0.2  # full jitter under base * 2**(n-1)
    assert [a.waited_ms > 0 for a in plan.decision.attempts] == [False, time.slept[0] > 0, time.slept[1] > 0]


async def test_without_a_retry_policy_each_deployment_is_tried_once():
    time = FakeTime()
    upstreams = Upstreams(time, {"a": [failing(503)], "b": [failing(502)]})
    with pytest.raises(RoutingFailed) as failure:
        await run(engine_at(time), [target("a"), target("b")], upstreams)
    assert upstreams.calls == ["a", "b"] and time.slept == []
    assert [a.status for a in failure.value.decision.attempts] == [503, 502]


async def test_a_429_holds_the_deployment_for_its_retry_after_and_the_next_round_waits_for_it():
    time = FakeTime()
    upstreams = Upstreams(time, {"only": [failing(429, retry_after="2"), "ok"]})
    policy = RoutingPolicy(retry=RetryPolicy(max_attempts=2, base_delay_ms=10, max_delay_ms=50, deadline_ms=10_000))
    plan, (_, answered) = await run(engine_at(time), [target("only")], upstreams, policy=policy)
    assert upstreams.calls == ["only", "only"]
    assert time.slept and time.slept[0] >= 1.9  # Retry-After, not the 10 ms backoff


async def test_a_retry_after_beyond_the_deadline_is_not_waited_for():
    time = FakeTime()
    upstreams = Upstreams(time, {"only": [failing(429, retry_after="30"), "ok"]})
    policy = RoutingPolicy(retry=RetryPolicy(max_attempts=3, deadline_ms=5_000))
    with pytest.raises(RoutingFailed) as failure:
        await run(engine_at(time), [target("only")], upstreams, policy=policy)
    assert upstreams.calls == ["only"] and time.slept == []
    assert failure.value.last.status == 429


async def test_a_held_deployment_is_skipped_by_the_next_call_while_another_answers():
    time = FakeTime()
    engine = engine_at(time)
    upstreams = Upstreams(time, {"a": [failing(429, retry_after="5"), "ok"], "b": ["ok"]})
    await run(engine, [target("a"), target("b")], upstreams)
    plan, (_, answered) = await run(engine, [target("a"), target("b")], upstreams)
    assert answered.deployment == "b" and upstreams.calls == ["a", "b", "b"]
    assert [(s.deployment, s.reason) for s in plan.decision.skipped] == [("a", "retry-after")]


async def test_an_open_breaker_keeps_calls_off_a_dead_deployment_until_its_cool_down():
    time = FakeTime()
    engine = engine_at(time)
    policy = RoutingPolicy(breaker=BreakerPolicy(consecutive_failures=3, cooldown_s=30, min_calls=100))
    upstreams = Upstreams(time, {"dead": [failing(503)], "live": ["ok"]})
    for _ in range(10):
        await run(engine, [target("dead"), target("live")], upstreams, policy=policy)
    assert upstreams.calls.count("dead") == 3  # then open: skipped for the cool-down
    plan, _ = await run(engine, [target("dead"), target("live")], upstreams, policy=policy)
    assert "breaker-open" in plan.decision.route_header()
    time.now += 31  # cooled: one probe goes through
    await run(engine, [target("dead"), target("live")], upstreams, policy=policy)
    assert upstreams.calls.count("dead") == 4


async def test_fallback_aliases_are_tried_after_the_alias_own_deployments_fail():
    time = FakeTime()
    engine = engine_at(time)
    upstreams = Upstreams(time, {"a": [failing(503)], "z": ["ok"]})
    aliases = {"smart": (target("a"),), "backup": (target("z"),)}
    policies = {"smart": RoutingPolicy(fallbacks=("backup", "gone"))}
    plan = engine.decide("smart", aliases=aliases, policies=policies, needs=Needs())
    _, answered = await engine.run(plan, upstreams)
    assert answered.deployment == "z"
    assert plan.decision.fallback_aliases == ["backup"]
    assert [(a.deployment, a.alias) for a in plan.decision.attempts] == [("a", "smart"), ("z", "backup")]
    assert "fallback: backup" in plan.decision.route_header()


async def test_the_cheapest_strategy_tries_the_cheapest_deployment_that_meets_the_floor_first():
    time = FakeTime()
    upstreams = Upstreams(time, {"cheap": ["ok"], "mid": ["ok"], "premium": ["ok"]})
    targets = [
        target("premium", price="30", quality=0.95),
        target("cheap", price="0.2", quality=0.5),
        target("mid", price="3", quality=0.8),
    ]
    policy = RoutingPolicy(strategy="cheapest", min_quality=0.7)
    plan, (_, answered) = await run(engine_at(time), targets, upstreams, policy=policy, needs=Needs(prompt_tokens=100))
    assert answered.deployment == "mid"
    assert plan.decision.candidates == ["mid", "premium"]
    assert [(s.deployment, s.reason) for s in plan.decision.skipped] == [("cheap", "quality")]
    assert plan.decision.route_header().startswith("cheapest") and "1 skipped: quality" in plan.decision.route_header()


async def test_the_caller_may_raise_the_floor_but_not_lower_it():
    time = FakeTime()
    targets = [target("cheap", quality=0.5), target("mid", quality=0.8)]
    policy = RoutingPolicy(min_quality=0.7)
    raised = engine_at(time).decide(
        "smart", aliases={"smart": tuple(targets)}, policies={"smart": policy}, needs=Needs(min_quality=0.9)
    )
    lowered = engine_at(time).decide(
        "smart", aliases={"smart": tuple(targets)}, policies={"smart": policy}, needs=Needs(min_quality=0.1)
    )
    assert raised.decision.candidates == [] and lowered.decision.candidates == ["mid"]


async def test_nothing_eligible_fails_with_every_skip_and_no_attempt():
    time = FakeTime()
    upstreams = Upstreams(time, {"small": ["ok"]})
    with pytest.raises(RoutingFailed) as failure:
        await run(engine_at(time), [target("small", context_window=100)], upstreams, needs=Needs(prompt_tokens=500))
    assert failure.value.last is None and upstreams.calls == []
    assert [(s.deployment, s.reason) for s in failure.value.decision.skipped] == [("small", "context")]


async def test_the_deadline_ends_the_attempts():
    time = FakeTime()
    upstreams = Upstreams(time, {"slow": [failing(503)], "next": ["ok"]}, latency_s=3.0)
    policy = RoutingPolicy(retry=RetryPolicy(max_attempts=5, deadline_ms=2_000))
    with pytest.raises(RoutingFailed):
        await run(engine_at(time), [target("slow"), target("next")], upstreams, policy=policy)
    assert upstreams.calls == ["slow"]


async def test_a_cancelled_attempt_is_recorded_and_cancels_the_call():
    time = FakeTime()

    async def cancelled(chosen: Target):
        raise asyncio.CancelledError

    engine = engine_at(time)
    plan = engine.decide("smart", aliases={"smart": (target("a"),)}, policies={}, needs=Needs())
    with pytest.raises(asyncio.CancelledError):
        await engine.run(plan, cancelled)
    assert [(a.deployment, a.error) for a in plan.decision.attempts] == [("a", "cancelled")]
    assert engine.state.in_flight["a"] == 0


async def test_an_attempt_is_counted_against_the_deployment_quota_with_its_estimated_tokens():
    time = FakeTime()
    counted = []
    engine = engine_at(time)
    engine.count_attempt = lambda chosen, tokens: counted.append((chosen.deployment, tokens))
    upstreams = Upstreams(time, {"a": [failing(503)], "b": ["ok"]})
    await run(engine, [target("a"), target("b")], upstreams, needs=Needs(prompt_tokens=40, output_tokens=10))
    assert counted == [("a", 50), ("b", 50)]
