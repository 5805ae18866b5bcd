"""A/B experiments through the official openai SDK against a real gateway: calls split between the arms by their
percentages, a `user` stays on one arm, and x-tollway-route and the recorded decision name the arm, whatever
strategy the alias orders the rest with.

Tolerances. Without a `user`, the arm comes from the engine's random source, seeded here, so the split is the
same every run; the bound is set as if it were not: 1,000 calls at 30 %, mid's share within +-0.07 of 0.30 fails
a fair split with probability 1.2e-6 (exact binomial tail, both sides). With a `user`, the arm is a hash of the
experiment's name and the user's: fixed for these names, and for 400 names drawn at random the share misses
0.30 +- 0.10 with probability 1.0e-5.
"""

from collections import Counter

import openai
import pytest

from portal import services
from routing.catalogue import import_catalogue
from routing.proxy import pipeline
from tests.gateway import start_gateway, wait_for_usage
from tests.portal.factories import TeamFactory
from tests.upstreams.canned_server import CannedUpstream
from tests.upstreams.server import LoopbackServer

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = [{"role": "user", "content": "Which is it: A, B, C or D?"}]
DEPLOYMENTS = ["cheap", "mid", "premium"]
EXPERIMENT = {"name": "cheap-vs-mid", "arms": {"cheap": 70, "mid": 30}}
CALLS, MID_SHARE, TOLERANCE = 1000, 0.30, 0.07
USERS, USER_TOLERANCE = 400, 0.10
# One alias per strategy, each with the same experiment above it.
STRATEGIES = {
    "split-priority": {"strategy": "priority"},
    "split-cheapest": {"strategy": "cheapest"},
    "split-bandit": {"strategy": "bandit", "bandit": {"exploration": 0}},
    "split-cascade": {
        "strategy": "cascade",
        "cascade": {"steps": ["cheap", "mid", "premium"], "checks": [{"type": "regex", "pattern": "^[A-D]$"}]},
    },
}


@pytest.fixture
def upstream():
    canned = CannedUpstream()
    with LoopbackServer(canned) as server:
        canned.url = server.url
        for name in DEPLOYMENTS:
            canned.answer(name, "B")
        yield canned


@pytest.fixture
def sdk(upstream):
    prices = {"cheap": ("1", "2"), "mid": ("10", "20"), "premium": ("100", "300")}
    import_catalogue(
        data={
            "providers": [{"name": "canned", "kind": "openai-compatible", "base_url": f"{upstream.url}/v1"}],
            "deployments": [
                {"name": n, "provider": "canned", "model": n, "input_per_1m": i, "output_per_1m": o}
                for n, (i, o) in prices.items()
            ],
            "aliases": [
                {"name": name, "deployments": DEPLOYMENTS, "routing": {**routing, "experiment": EXPERIMENT}}
                for name, routing in STRATEGIES.items()
            ],
        }
    )
    key = services.issue_api_key(team=TeamFactory(name="Checkout", tenant__name="Acme"), name="ab").secret
    with start_gateway() as gateway:
        pipeline.engine().rng.seed(20261202)  # the seeded random source the no-user split draws from
        yield openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)


def ask(sdk, alias: str, **extra) -> dict:
    return sdk.chat.completions.with_raw_response.create(model=alias, messages=CHAT, **extra).headers


def test_calls_without_a_user_split_between_the_arms_by_their_percentages(sdk):
    served = Counter(ask(sdk, "split-priority")["x-tollway-deployment"] for _ in range(CALLS))

    assert set(served) == {"cheap", "mid"}  # premium is no arm, and priority alone would pick cheap every time
    assert served["mid"] / CALLS == pytest.approx(MID_SHARE, abs=TOLERANCE)
    records = wait_for_usage(CALLS, timeout_s=60)
    assert Counter(r.decision["arm"] for r in records) == served


def test_a_user_stays_on_one_arm_and_users_split_by_the_percentages(sdk):
    users = [f"user-{n}" for n in range(USERS)]

    first = {user: ask(sdk, "split-priority", user=user)["x-tollway-deployment"] for user in users}
    again = {user: ask(sdk, "split-priority", user=user)["x-tollway-deployment"] for user in reversed(users)}

    assert again == first
    assert Counter(first.values())["mid"] / USERS == pytest.approx(MID_SHARE, abs=USER_TOLERANCE)
    records = wait_for_usage(2 * USERS, timeout_s=60)
    assert all(r.decision["arm"] == r.deployment for r in records)
    assert Counter(r.deployment for r in records) == Counter(first.values()) + Counter(again.values())


def user_on_each_arm(sdk) -> dict[str, str]:
    """A user the hash puts on each arm (the split test above shows the hash is what decides)."""
    on_arm = {}
    for n in range(50):
        headers = ask(sdk, "split-priority", user=f"probe-{n}")
        on_arm.setdefault(headers["x-tollway-deployment"], f"probe-{n}")
    assert set(on_arm) == {"cheap", "mid"}
    wait_for_usage(50)
    return on_arm


@pytest.mark.parametrize("alias", list(STRATEGIES))
def test_the_route_header_and_the_recorded_decision_name_the_arm_whatever_the_strategy(sdk, upstream, alias):
    on_arm = user_on_each_arm(sdk)

    for arm, user in on_arm.items():
        headers = ask(sdk, alias, user=user)
        strategy = STRATEGIES[alias]["strategy"]
        assert headers["x-tollway-deployment"] == arm
        assert headers["x-tollway-route"].startswith(f"{strategy} (experiment cheap-vs-mid: {arm}")

    records = wait_for_usage(52)[50:]
    assert [(r.strategy, r.decision["arm"], r.deployment) for r in records] == [
        (STRATEGIES[alias]["strategy"], arm, arm) for arm in on_arm
    ]
    assert all(r.decision["candidates"][0] == r.decision["arm"] for r in records)


def test_a_cascades_arm_is_the_step_its_climb_starts_from_and_it_climbs_only_upwards(sdk, upstream):
    mid_user = user_on_each_arm(sdk)["mid"]
    upstream.answer("mid", "The answer is B")  # fails the cascade's regex
    upstream.answer("premium", "C")
    upstream.log.requests.clear()

    answer = sdk.chat.completions.with_raw_response.create(model="split-cascade", messages=CHAT, user=mid_user)

    assert (answer.parse().choices[0].message.content, answer.headers["x-tollway-deployment"]) == ("C", "premium")
    assert upstream.models_called() == ["mid", "premium"]  # cheap, below the arm, is never tried
    assert answer.headers["x-tollway-route"] == (
        "cascade (experiment cheap-vs-mid: mid; step 2 of 2: premium; mid failed regex)"
    )
    [record] = wait_for_usage(51)[50:]
    assert record.decision["arm"] == "mid"
    assert [a["deployment"] for a in record.decision["attempts"]] == ["mid", "premium"]
