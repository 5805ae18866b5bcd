"""Two gateway processes on PostgreSQL and Redis share one bandit: a rating given to process A moves the posterior
process B routes by, within a bounded wait; and another team's request id answers 404 on either process.

Each process adds what it learnt to Redis and reads the totals back every second (routing/engine/bandit.py's
SharedBandit), so a rating reaches the other process within about two of those rounds: the bound below is that
plus room for a shared two-core machine. B's posterior is read where a caller would: the decision recorded with
each of its calls."""

import re
import time

import httpx
import openai
import pytest
from django.conf import settings
from django.db import connection

from billing.models import UsageRecord
from portal import services
from routing.catalogue import import_catalogue
from tests.gateway_process import GatewayProcess
from tests.portal.factories import TeamFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql" or not settings.REDIS_URL,
        reason="needs the production shape: a PostgreSQL test database and REDIS_URL (CI's second run sets both)",
    ),
    pytest.mark.timeout(120),
]

CHAT = [{"role": "user", "content": "Hi"}]
SHARE_ROUNDS_S = 2 * 1.0  # A's round that sends the rating, B's round that reads it back
BOUND_S = SHARE_ROUNDS_S + 3.0
POLL_S = 0.2


@pytest.fixture
def keys(openai_upstream):
    deployment = {"provider": "up", "model": "gpt-4o-mini", "input_per_1m": "1", "output_per_1m": "2"}
    import_catalogue(
        data={
            "providers": [
                {"name": "up", "kind": "openai", "base_url": f"{openai_upstream.url}/v1", "api_key": "sk-upstream-test"}
            ],
            "deployments": [{"name": "cheap", **deployment}, {"name": "premium", **deployment}],
            "aliases": [
                {
                    "name": "learner",
                    "deployments": ["cheap", "premium"],
                    "routing": {"strategy": "bandit", "bandit": {"exploration": 0}},
                }
            ],
        }
    )
    ours, theirs = TeamFactory(name="Ours"), TeamFactory(name="Theirs")
    return (
        services.issue_api_key(team=ours, name="ours").secret,
        services.issue_api_key(team=theirs, name="theirs").secret,
    )


@pytest.fixture
def two_gateways(keys, tmp_path):
    env = {"REDIS_URL": settings.REDIS_URL, "TOLLWAY_USAGE_FLUSH_INTERVAL_S": "0.05", "TOLLWAY_ACCESS_LOG": "0"}
    with (
        GatewayProcess(env=env, outbox_dir=tmp_path / "outbox-a") as a,
        GatewayProcess(env=env, outbox_dir=tmp_path / "outbox-b") as b,
    ):
        yield a, b


def ask(url: str, key: str) -> tuple[str, str]:
    """(the deployment that answered, the call's x-request-id)."""
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    raw = sdk.chat.completions.with_raw_response.create(model="learner", messages=CHAT)
    return raw.headers["x-tollway-deployment"], raw.headers["x-request-id"]


def rate(url: str, key: str, request_id: str, score: float) -> httpx.Response:
    body = {"request_id": request_id, "score": score}
    return httpx.post(f"{url}/v1/feedback", json=body, headers={"authorization": f"Bearer {key}"}, timeout=15)


def recorded_posterior(request_id: str, deployment: str) -> tuple[float, float]:
    """The Beta(a, b) the call's recorded decision gives the deployment (waiting for the record to land)."""
    deadline = time.monotonic() + 10
    while (record := UsageRecord.objects.filter(request_id=request_id).first()) is None:
        assert time.monotonic() < deadline, f"no usage record for {request_id}"
        time.sleep(0.05)
    a, b = re.search(r"beta\(([0-9.]+), ([0-9.]+)\)", record.decision["estimates"][deployment]).groups()
    return float(a), float(b)


def test_a_rating_given_to_one_process_moves_the_posterior_of_the_other(two_gateways, keys):
    a, b = two_gateways
    ours, _ = keys
    served, request_id = ask(a.url, ours)
    assert recorded_posterior(ask(b.url, ours)[1], served) == (1.0, 1.0)

    assert rate(a.url, ours, request_id, 1.0).status_code == 200
    rated_at = time.monotonic()
    seen = None
    while time.monotonic() - rated_at < BOUND_S + 5:  # past the bound, so a late arrival reports by how much
        if recorded_posterior(ask(b.url, ours)[1], served) == (2.0, 1.0):
            seen = time.monotonic() - rated_at
            break
        time.sleep(POLL_S)

    assert seen is not None, f"process B never saw the rating given to A ({BOUND_S + 5:.0f} s)"
    print(f"process B routed by A's rating {seen:.2f} s after it was given")  # the figure, with -s
    assert seen <= BOUND_S, f"process B saw it after {seen:.2f} s, bound {BOUND_S} s"
    # And A's own posterior says the same, so the rating counted once, not once per process.
    assert recorded_posterior(ask(a.url, ours)[1], served) == (2.0, 1.0)


def test_another_teams_request_id_answers_404_on_both_processes(two_gateways, keys):
    a, b = two_gateways
    ours, theirs = keys
    _, on_a = ask(a.url, ours)
    _, on_b = ask(b.url, ours)
    recorded_posterior(on_a, "cheap"), recorded_posterior(on_b, "cheap")  # both records stored

    answers = [rate(url, theirs, request_id, 0.0) for url in (a.url, b.url) for request_id in (on_a, on_b)]

    assert [r.status_code for r in answers] == [404] * 4
    assert all(r.json()["error"]["code"] == "unknown_request_id" for r in answers)
    # The owner still may, on either process.
    assert rate(b.url, ours, on_a, 1.0).status_code == 200 and rate(a.url, ours, on_b, 1.0).status_code == 200
