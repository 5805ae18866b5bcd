"""The bandit strategy through the official openai SDK against a real gateway, fed by POST /v1/feedback: the
route header and the recorded decision explain each draw, it converges on the deployment rated best under a
seeded random source, an upstream error and a failed cascade check teach it reward 0 on their own, and a frozen
bandit learns nothing.

With the default weights (quality 1, cost 0, latency 0) a rating's reward is the score itself, so each
posterior below is exactly Beta(1 + sum of scores, 1 + sum of (1 - score)) over the calls its arm served."""

import random
import re
from collections import Counter

import httpx
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
ARMS = ("cheap", "mid", "premium")
TRUE_MEAN = {"cheap": 0.2, "mid": 0.5, "premium": 0.8}  # chance a call each serves is rated 1 (else 0)
ROUNDS, LAST = 300, 100
CALLS_EACH = 12
PRICE = {"input_per_1m": "1", "output_per_1m": "2"}
# Seeded (the gateway's draws and the ratings): these rounds end the same way every run. Premium's share of the
# last 100 calls is 0.9 or more here; a fair bandit that had not converged would be near 1/3.
MIN_BEST_SHARE = 0.8
ROUTE = re.compile(r"bandit \((sampled|explored) ?([0-9.]*)\)")


def bandit(*deployments: str, **policy) -> dict:
    return {"deployments": list(deployments), "routing": {"strategy": "bandit", "bandit": policy}}


@pytest.fixture
def upstream():
    canned = CannedUpstream()
    with LoopbackServer(canned) as server:
        canned.url = server.url
        for name in ARMS:
            canned.answer(name, "B")
        canned.answer("wordy", "The answer is B")  # fails the checked alias's regex
        yield canned


@pytest.fixture
def gateway(upstream, openai_upstream, settings):
    # Each rating waits for its call's usage record: flushed often, 300 rounds take seconds, not minutes.
    settings.TOLLWAY_USAGE_FLUSH_INTERVAL_S = 0.02
    settings.TOLLWAY_FEEDBACK_WAIT_S = 5.0
    canned = [{"name": n, "provider": "canned", "model": n, **PRICE} for n in ARMS]
    import_catalogue(
        data={
            "providers": [
                {"name": "canned", "kind": "openai-compatible", "base_url": f"{upstream.url}/v1"},
                {
                    "name": "openai-test",
                    "kind": "openai",
                    "base_url": f"{openai_upstream.url}/v1",
                    "api_key": "sk-upstream-test",
                },
            ],
            "deployments": [
                *canned,
                {"name": "wordy", "provider": "canned", "model": "wordy", **PRICE},
                # The OpenAI test upstream answers this model 500, every time.
                {"name": "broken", "provider": "openai-test", "model": "fail-500", **PRICE},
            ],
            "aliases": [
                {"name": "learner", **bandit(*ARMS, exploration=0.05)},
                {"name": "explained", **bandit(*ARMS, exploration=0)},
                {"name": "flaky", **bandit("broken", "cheap", exploration=0)},
                {
                    "name": "checked",
                    # A bandit that climbs on a check: its order is the bandit's, the checks those of a cascade.
                    "deployments": ["wordy", "premium"],
                    "routing": {
                        "strategy": "bandit",
                        "bandit": {"exploration": 0},
                        "cascade": {"steps": ["wordy", "premium"], "checks": [{"type": "regex", "pattern": "^[A-D]$"}]},
                    },
                },
                {"name": "still", **bandit(*ARMS, frozen=True)},
            ],
        }
    )
    key = services.issue_api_key(team=TeamFactory(name="Checkout", tenant__name="Acme"), name="bandit").secret
    with start_gateway() as running:
        pipeline.engine().rng.seed(20261202)
        running.key = key
        running.sdk = openai.OpenAI(base_url=f"{running.url}/v1", api_key=key, max_retries=0)
        yield running


def call(gateway, alias: str):
    """(the deployment that answered, x-tollway-route, the x-request-id)."""
    raw = gateway.sdk.chat.completions.with_raw_response.create(model=alias, messages=CHAT)
    return raw.headers["x-tollway-deployment"], raw.headers["x-tollway-route"], raw.headers["x-request-id"]


def rate(gateway, request_id: str, score: float) -> None:
    answered = httpx.post(
        f"{gateway.url}/v1/feedback",
        json={"request_id": request_id, "score": score},
        headers={"authorization": f"Bearer {gateway.key}"},
        timeout=10,
    )
    assert answered.status_code == 200, answered.text


def posteriors(record) -> dict[str, tuple[float, float]]:
    """Each deployment's Beta(a, b) as the call's recorded decision states it."""
    found = {}
    for deployment, said in record.decision["estimates"].items():
        a, b = re.search(r"beta\(([0-9.]+), ([0-9.]+)\)", said).groups()
        found[deployment] = (float(a), float(b))
    return found


def test_the_header_and_the_decision_explain_the_draw_and_ratings_move_the_posterior(gateway):
    served, route, request_id = call(gateway, "explained")
    how, value = ROUTE.fullmatch(route).groups()
    [record] = wait_for_usage(1)
    assert how == "sampled" and record.decision["reason"] == f"sampled {value}"
    # The winner's own sample is the one the header shows, and it beat every other arm's.
    samples = {d: float(s.split()[1].rstrip(",")) for d, s in record.decision["estimates"].items()}
    assert f"{samples[served]:.3f}" == value and samples[served] == max(samples.values())
    assert record.decision["candidates"] == sorted(samples, key=lambda d: -samples[d])
    assert posteriors(record) == dict.fromkeys(ARMS, (1.0, 1.0))

    rate(gateway, request_id, 1.0)
    rate(gateway, request_id, 0.5)  # the last rating wins: the first one's reward is taken back
    call(gateway, "explained")

    after = posteriors(wait_for_usage(4)[-1])  # the call, two ratings, the next call
    assert after[served] == (1.5, 1.5)
    assert all(after[d] == (1.0, 1.0) for d in ARMS if d != served)


def test_under_a_seeded_random_source_and_feedback_it_converges_on_the_best_deployment(gateway):
    ratings = random.Random(7)
    picks = []
    for _ in range(ROUNDS):
        served, _, request_id = call(gateway, "learner")
        picks.append(served)
        rate(gateway, request_id, 1.0 if ratings.random() < TRUE_MEAN[served] else 0.0)

    last = Counter(picks[-LAST:])
    assert last["premium"] / LAST >= MIN_BEST_SHARE, last
    assert set(picks) == set(ARMS)  # exploration kept every arm in play
    records = wait_for_usage(2 * ROUNDS, timeout_s=60)
    explored = [r for r in records if r.endpoint == "chat.completions" and r.decision["reason"] == "explored"]
    assert 0 < len(explored) < 0.15 * ROUNDS  # exploration 0.05 of 300: about 15


def first_tried(record) -> str:
    return record.decision["attempts"][0]["deployment"]


def test_an_upstream_error_teaches_reward_0_without_any_feedback(gateway):
    for _ in range(CALLS_EACH):
        assert call(gateway, "flaky")[0] == "cheap"  # when broken goes first, its fail-over answers
    call(gateway, "flaky")

    records = wait_for_usage(CALLS_EACH + 1)
    errors = sum(first_tried(r) == "broken" for r in records[:CALLS_EACH])
    assert errors >= 1  # the seeded draws put it first at least once
    # The last call's decision: broken lost once per error, cheap answered unrated and learnt nothing.
    assert posteriors(records[-1]) == {"broken": (1.0, 1.0 + errors), "cheap": (1.0, 1.0)}


def test_a_failed_cascade_check_teaches_reward_0_without_any_feedback(gateway):
    for _ in range(CALLS_EACH):
        assert call(gateway, "checked")[0] == "premium"  # wordy fails the regex whenever it goes first
    _, route, _ = call(gateway, "checked")

    records = wait_for_usage(CALLS_EACH + 1)
    failed = sum(first_tried(r) == "wordy" for r in records[:CALLS_EACH])
    assert failed >= 1
    assert all(r.decision["checks"][0]["failed"] == ["regex"] for r in records if first_tried(r) == "wordy")
    assert posteriors(records[-1]) == {"wordy": (1.0, 1.0 + failed), "premium": (1.0, 1.0)}


def test_a_frozen_bandit_serves_the_best_mean_and_learns_from_nothing(gateway):
    served, route, request_id = call(gateway, "still")
    rate(gateway, request_id, 1.0)
    again, route_again, _ = call(gateway, "still")

    records = wait_for_usage(3)
    assert route == route_again == "bandit (frozen, mean 0.500)"
    assert served == again == "cheap"  # every mean equal: the first listed, every time
    assert posteriors(records[0]) == posteriors(records[-1]) == dict.fromkeys(ARMS, (1.0, 1.0))
    assert pipeline.engine().bandit.posterior("still", "cheap") == (1.0, 1.0)
