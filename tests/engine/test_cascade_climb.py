"""The cascade's climb (routing/engine/cascade.py through Engine.run), with plain upstream functions: which step's
answer is final, what is billed, what stops the climb, and what the decision says."""

import random
from decimal import Decimal

import pytest

from core.errors import UpstreamError
from core.values import CascadePolicy, CheckSpec, ModelPrice, RoutingPolicy, Target, TokenUsage
from routing.engine.cascade import CascadeHooks
from routing.engine.checks import Answer, CheckContext
from routing.engine.constraints import Needs
from routing.engine.router import Engine, RoutingFailed

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


def target(name: str, price: str) -> Target:
    return Target(
        deployment=name,
        provider="p",
        kind="openai",
        base_url="http://127.0.0.1:9",
        model=name,
        price=ModelPrice(Decimal(price), Decimal(price)),
    )


CHEAP, MID, PREMIUM = target("cheap", "1"), target("mid", "10"), target("premium", "100")


def policy(steps=("cheap", "premium"), checks=(CheckSpec("regex", pattern="^[A-D]$"),), max_cost_usd=None):
    return RoutingPolicy(
        strategy="cascade", cascade=CascadePolicy(steps=tuple(steps), checks=tuple(checks), max_cost_usd=max_cost_usd)
    )


class Upstreams:
    """Each deployment answers its text (or raises its error); every answer costs 1,000 + 1,000 tokens."""

    def __init__(self, answers: dict[str, object]) -> None:
        self.answers, self.calls = answers, []

    async def __call__(self, chosen: Target):
        self.calls.append(chosen.deployment)
        answer = self.answers[chosen.deployment]
        if isinstance(answer, Exception):
            raise answer
        return {"deployment": chosen.deployment, "text": answer}


async def hold(result, chosen):
    return result, Answer(text=result["text"], finish_reason="stop"), TokenUsage(1000, 1000)


def hooks() -> CascadeHooks:
    price = lambda tokens, t: (tokens.prompt_tokens + tokens.completion_tokens) * t.price.input_per_million / 10**6  # noqa: E731
    return CascadeHooks(hold=hold, context=CheckContext(request={}), cost_of=price)


async def climb(routing: RoutingPolicy, answers: dict, *, output_tokens: int = 1000):
    engine = Engine(rng=random.Random(1))
    targets = (CHEAP, MID, PREMIUM)
    plan = engine.decide(
        "smart",
        aliases={"smart": targets},
        policies={"smart": routing},
        needs=Needs(prompt_tokens=1000, output_tokens=output_tokens),
    )
    upstreams, given = Upstreams(answers), hooks()
    result, answered = await engine.run(plan, upstreams, cascade_hooks=given)
    return result, answered, plan.decision, given.discarded, upstreams.calls


async def test_an_answer_that_passes_its_checks_is_final_and_nothing_dearer_is_called():
    result, answered, decision, discarded, calls = await climb(policy(), {"cheap": "B", "premium": "C"})

    assert (answered.deployment, calls, discarded) == ("cheap", ["cheap"], [])
    assert decision.candidates == ["cheap", "premium"]  # only the steps; mid is not part of the climb
    assert decision.checks == [{"step": "cheap", "passed": True, "failed": [], "details": {}}]
    assert decision.route_header() == "cascade (step 1 of 2: cheap)"


async def test_a_failed_check_escalates_and_the_cheap_step_is_billed_as_discarded():
    result, answered, decision, discarded, calls = await climb(policy(), {"cheap": "Maybe B?", "premium": "C"})

    assert (result["text"], calls) == ("C", ["cheap", "premium"])
    assert [(tokens.prompt_tokens, t.deployment) for tokens, t in discarded] == [(1000, "cheap")]
    assert [a.deployment for a in decision.attempts] == ["cheap", "premium"]
    assert decision.checks[0] == {
        "step": "cheap",
        "passed": False,
        "failed": ["regex"],
        "details": {"regex": "no match"},
    }
    assert decision.route_header() == "cascade (step 2 of 2: premium; cheap failed regex)"


async def test_max_cost_stops_the_climb_before_a_step_that_would_pass_it_and_the_best_answer_so_far_is_final():
    # cheap spends $0.002; mid is estimated at $0.02, premium at $0.2: with $0.05, mid runs and premium does not.
    routing = policy(steps=("cheap", "mid", "premium"), max_cost_usd=Decimal("0.05"))

    result, answered, decision, discarded, calls = await climb(routing, {"cheap": "no", "mid": "nope", "premium": "A"})

    assert calls == ["cheap", "mid"]
    assert answered.deployment == "mid"  # both failed one check: the later step wins the tie
    assert [t.deployment for _, t in discarded] == ["cheap"]
    assert decision.checks[-1] == {
        "step": "premium",
        "stopped": "max_cost_usd",
        "detail": "spent $0.022 + est. $0.2 > $0.05",
    }
    assert decision.reason == "step 2 of 3: mid, best so far; cheap failed regex; max_cost_usd stopped the climb"


async def test_a_step_that_errors_is_climbed_past_and_a_last_step_that_errors_leaves_the_best_so_far():
    boom = UpstreamError("down", status=503, is_retryable=True)

    _, answered, decision, _, calls = await climb(policy(), {"cheap": boom, "premium": "A"})
    assert (answered.deployment, calls) == ("premium", ["cheap", "premium"])
    assert decision.checks[0] == {"step": "cheap", "error": "upstream_error"}

    result, answered, decision, discarded, _ = await climb(policy(), {"cheap": "unsure", "premium": boom})
    assert (answered.deployment, result["text"], discarded) == ("cheap", "unsure", [])
    assert decision.reason == "step 1 of 2: cheap, best so far"


async def test_when_no_step_answers_the_call_fails_with_the_last_error():
    boom = UpstreamError("down", status=503, is_retryable=True)

    with pytest.raises(RoutingFailed) as failed:
        await climb(policy(), {"cheap": boom, "premium": boom})

    assert failed.value.last is boom
    assert [a.deployment for a in failed.value.decision.attempts] == ["cheap", "premium"]
