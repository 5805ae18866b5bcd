"""A learned router's new version (train_router) reaches a second gateway process within 1 s on PostgreSQL and
Redis, and is used there: the first call that process routes by it says `learned (v2, ...)` in x-tollway-route.

Both processes route by v1 first (so each has built a snapshot with a model in it and loaded its tokenizer), and
their periodic read is 30 s apart, so only the change feed's Redis notification can deliver v2 in time. The delay
is measured from the version's row (its created_at, written just before the commit) to the first probe of each
process whose call was routed by v2."""

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.conf import settings
from django.db import connection

from portal import services
from routing import services as routing_services
from routing.catalogue import import_catalogue
from routing.models import LearnedRouter, ModelAlias
from tests.control_plane.cluster import LONG_REFRESH_S, NOTIFY_BOUND_S, FirstSeen, assert_within, monotonic_at
from tests.gateway_process import GatewayProcess
from tests.portal.factories import TeamFactory
from tests.upstreams.canned_server import CannedUpstream
from tests.upstreams.server import LoopbackServer

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql" or not settings.REDIS_URL,
        reason="needs the production shape: a PostgreSQL test database and REDIS_URL (CI's second run sets both)",
    ),
    pytest.mark.timeout(180),
]

PORTS = (19220, 19221)  # the two gateway processes
UNTRAINED = "learned (no trained model yet: priority order); 1 skipped: quality"
SQL = "Fix this SQL: select the names of users older than 30"
LINES = [
    {"prompt": f"Fix this SQL query {n}: select the orders of customer {n}", "scores": {"cheap": 1, "premium": 1}}
    for n in range(30)
] + [{"prompt": f"Write a sonnet about the sea, poem {n}", "scores": {"cheap": 0, "premium": 1}} for n in range(30)]


@pytest.fixture
def key():
    canned = CannedUpstream()
    with LoopbackServer(canned) as upstream:
        canned.answer("cheap", "cheap answer")
        canned.answer("premium", "premium answer")
        import_catalogue(
            data={
                "providers": [{"name": "canned", "kind": "openai-compatible", "base_url": f"{upstream.url}/v1"}],
                "deployments": [
                    {"name": "premium", "provider": "canned", "model": "premium", "quality": 0.9,
                     "input_per_1m": "10", "output_per_1m": "30"},
                    {"name": "cheap", "provider": "canned", "model": "cheap", "quality": 0.6,
                     "input_per_1m": "0.2", "output_per_1m": "0.2"},
                ],
                "aliases": [
                    {"name": "smart", "deployments": ["premium", "cheap"],
                     "routing": {"strategy": "learned", "min_quality": 0.7}},
                ],
            }
        )  # fmt: skip
        yield services.issue_api_key(team=TeamFactory(), name="learned").secret


@pytest.fixture
def two_gateways(key, tmp_path):
    env = {
        "REDIS_URL": settings.REDIS_URL,
        "TOLLWAY_SNAPSHOT_REFRESH_S": str(LONG_REFRESH_S),
        "TOLLWAY_ACCESS_LOG": "0",
    }
    gateways = []
    for index, port in enumerate(PORTS):
        gateway = GatewayProcess(
            env={**env, "TOLLWAY_METRICS_DIR": str(tmp_path / f"metrics-{index}")}, outbox_dir=tmp_path / f"out-{index}"
        )
        gateway.port, gateway.url = port, f"http://127.0.0.1:{port}"
        gateways.append(gateway)
    try:
        with ThreadPoolExecutor(len(gateways)) as pool:  # side by side: each takes seconds of set-up
            list(pool.map(GatewayProcess.start, gateways))
        yield gateways
    finally:
        for gateway in gateways:
            if gateway.process is not None and gateway.process.poll() is None:
                gateway.terminate()


def route_of(url: str, key: str) -> str:
    """x-tollway-route of one call to the learned alias (a fresh connection, as a new caller's)."""
    body = {"model": "smart", "messages": [{"role": "user", "content": SQL}]}
    answer = httpx.post(f"{url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.headers["x-tollway-route"]


def routed_by(version: str, key: str):
    return lambda url: route_of(url, key).startswith(f"learned ({version}, ")


def train() -> LearnedRouter:
    alias = ModelAlias.objects.get(name="smart")
    return routing_services.train_router(alias=alias, lines=[json.dumps(line) for line in LINES])


def test_a_new_learned_version_reaches_the_second_process_within_1_s_and_is_used_there(two_gateways, key):
    urls = [gateway.url for gateway in two_gateways]
    assert [route_of(url, key) for url in urls] == [UNTRAINED] * 2
    with FirstSeen(urls, routed_by("v1", key), timeout_s=10) as warm:
        train()
    assert all(at is not None for at in warm.seen_at.values()), f"v1 never reached both: {warm.seen_at}"

    with FirstSeen(urls, routed_by("v2", key)) as seen:
        version = train()
    delays = seen.seconds_since(monotonic_at(version.created_at))

    assert version.version == 2
    assert_within(NOTIFY_BOUND_S, {"learned router v2 first used": delays})
    # And it is what each process routes by from then on.
    assert all(route_of(url, key).startswith("learned (v2, floor 0.7: cheap 0.") for url in urls)
