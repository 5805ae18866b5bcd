import asyncio
import os
from urllib.parse import urlsplit

import httpx
import pytest
from django.db import connection
from django.test import override_settings

from billing.ledger import admission
from core.values import RateRule, Snapshot
from portal import services
from routing.control_plane import snapshot
from routing.observability import readiness
from tests.billing.ledger_helpers import CHAT
from tests.billing.tcp_proxy import CuttableProxy
from tests.gateway import start_gateway, wait_for_usage
from tests.gateway_process import GatewayProcess, database_url
from tests.observability.prometheus_text import scrape, total
from tests.redis_server import IS_INSTALLED, RedisServer
from tests.upstreams.server import free_port

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def redis_unreachable(settings):
    original = settings.REDIS_URL
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/12"  # nothing listens there
    readiness.register_builtin_checks()
    yield
    settings.REDIS_URL = original
    readiness.register_builtin_checks()  # back to what the real settings call for


def call(url: str, key: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {key}"}, timeout=30)


def test_healthz_answers_without_touching_the_console(gateway):
    response = httpx.get(f"{gateway.url}/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "set-cookie" not in response.headers  # Django's session middleware never saw it


def test_readyz_is_ready_when_the_database_answers_and_the_snapshot_is_loaded(gateway):
    response = httpx.get(f"{gateway.url}/readyz")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"]["ok"] and body["checks"]["snapshot"]["ok"]
    assert body["checks"]["snapshot"]["detail"]["age_s"] < 60


def test_readyz_stays_ready_but_degraded_naming_redis_when_redis_does_not_answer(gateway, redis_unreachable):
    response = httpx.get(f"{gateway.url}/readyz", timeout=10)

    assert response.status_code == 200
    body = response.json()
    # The gateway started with the real settings: it hears changes through Redis if those name one (and that
    # Redis still answers); if not, the change feed is read periodically and says so beside Redis itself.
    listening = bool(os.environ.get("REDIS_URL"))
    assert body["status"] == "degraded"
    assert sorted(body["degraded"]) == (["redis"] if listening else ["change_feed", "redis"])
    assert body["checks"]["change_feed"]["detail"]["mode"] == ("notify" if listening else "periodic")
    assert body["checks"]["redis"]["ok"] is False
    assert "ConnectionError" in body["checks"]["redis"]["detail"]
    assert body["checks"]["database"]["ok"] is True


@pytest.mark.skipif(not IS_INSTALLED, reason="needs redis-server to start a Redis of the test's own")
def test_while_redis_is_down_calls_are_served_readyz_answers_200_and_metrics_show_redis_down(catalogue, team):
    key = services.issue_api_key(team=team, name="limited", rpm_limit=1000).secret
    own_redis = RedisServer().start()
    try:
        with override_settings(REDIS_URL=own_redis.url), start_gateway() as gateway:
            before = call(gateway.url, key)
            own_redis.stop()
            during = [call(gateway.url, key) for _ in range(3)]
            ready = httpx.get(f"{gateway.url}/readyz", timeout=10)
            samples = scrape(gateway.url)
    finally:
        own_redis.stop()
        readiness.register_builtin_checks()  # back to what the real settings call for

    assert [r.status_code for r in [before, *during]] == [200] * 4
    assert ready.status_code == 200
    body = ready.json()
    # The gateway's own Redis is gone, its change notifications with it: the feed is read periodically.
    assert body["status"] == "degraded" and sorted(body["degraded"]) == ["change_feed", "redis"]
    assert body["checks"]["change_feed"]["detail"]["mode"] == "periodic"
    assert body["checks"]["limits"] == {
        "ok": True,
        "detail": {"mode": "database-fallback", "enforced_in": "database (Redis unreachable: fallback, slower)"},
    }
    assert total(samples, "tollway_dependency_up", dependency="redis") == 0
    assert total(samples, "tollway_dependency_up", dependency="database") == 1
    assert total(samples, "tollway_dependency_up", dependency="limits") == 1
    assert total(samples, "tollway_readiness", status="degraded") == 1
    assert total(samples, "tollway_readiness", status="ready") == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL to cut (DATABASE_URL)")
def test_while_postgresql_is_down_calls_are_served_readyz_answers_200_and_metrics_show_it(tmp_path, catalogue, team):
    key = services.issue_api_key(team=team, name="limited", rpm_limit=1000).secret
    database = urlsplit(database_url())
    pg_proxy = CuttableProxy(database.hostname, database.port or 5432).start()
    env = {"DATABASE_URL": database._replace(netloc=f"{database.username}@127.0.0.1:{pg_proxy.port}").geturl()}
    try:
        with GatewayProcess(workers=1, env=env, outbox_dir=tmp_path / "outbox") as gateway:
            before = call(gateway.url, key)
            pg_proxy.cut()
            during = [call(gateway.url, key) for _ in range(3)]
            ready = httpx.get(f"{gateway.url}/readyz", timeout=10)
            samples = scrape(gateway.url)
            pg_proxy = CuttableProxy(database.hostname, database.port or 5432, port=pg_proxy.port).start()
            records = wait_for_usage(4, timeout_s=30)  # the rows waited in the outbox; they land once it is back
    finally:
        pg_proxy.stop()

    assert [r.status_code for r in [before, *during]] == [200] * 4
    assert ready.status_code == 200
    body = ready.json()
    # usage_records joins once the writer has tried to store the rows made during the cut.
    assert body["status"] == "degraded" and "database" in body["degraded"]
    # Usage rows wait in the outbox and the change feed cannot be read: both may say so, nothing else does.
    assert set(body["degraded"]) <= {"database", "usage_records", "change_feed"}
    assert body["checks"]["database"]["ok"] is False
    assert body["checks"]["database"]["detail"]["serving_from"] == "snapshot"
    assert body["checks"]["snapshot"]["ok"] and body["checks"]["limits"]["ok"]
    assert total(samples, "tollway_dependency_up", dependency="database") == 0
    assert total(samples, "tollway_dependency_up", dependency="snapshot") == 1
    assert total(samples, "tollway_readiness", status="degraded") == 1
    assert [r.status for r in records] == [200] * 4


@pytest.mark.anyio
async def test_readyz_is_not_ready_before_the_snapshot_is_loaded(settings):
    loaded = snapshot.current()
    readiness.register_builtin_checks()
    snapshot.install(Snapshot())
    try:
        report = await readiness.run_checks()
    finally:
        snapshot.install(loaded)

    assert (report.status, report.failed, report.can_serve) == ("not ready", ["snapshot"], False)
    assert report.checks["snapshot"] == {"ok": False, "detail": "catalogue, limits and budgets not loaded yet"}


class NoStoreAnswers(admission.Ledger):
    async def probe(self, *, timeout_s: float) -> str:
        return ""


@pytest.mark.anyio
async def test_with_no_store_answering_the_gateway_is_not_ready_only_if_something_has_a_limit():
    without_limits = Snapshot(keys_have_limits=False, loaded_at=1.0)
    with_a_key_limit = Snapshot(keys_have_limits=True, loaded_at=2.0)
    with_a_team_limit = Snapshot(team_limits={2: RateRule(rpm=60)}, loaded_at=3.0)
    loaded = snapshot.current()
    admission.install(NoStoreAnswers(redis_url="redis://127.0.0.1:1/0"))
    outcomes = []
    try:
        for candidate in (without_limits, with_a_key_limit, with_a_team_limit):
            snapshot.install(candidate)
            outcomes.append((await admission.readiness()).is_ok)
    finally:
        snapshot.install(loaded)
        await admission.current().aclose()
        admission.install(None)

    assert outcomes == [True, False, False]


def test_a_registered_check_that_hangs_fails_readiness_within_the_timeout(gateway, settings):
    settings.TOLLWAY_READY_TIMEOUT_S = 0.2

    async def budget_store_hangs():
        await asyncio.sleep(30)

    readiness.register_check("budgets", budget_store_hangs)
    try:
        response = httpx.get(f"{gateway.url}/readyz", timeout=5)
    finally:
        readiness.unregister_check("budgets")

    assert response.status_code == 503
    assert (response.json()["status"], response.json()["degraded"]) == ("not ready", [])
    assert response.json()["checks"]["budgets"] == {"ok": False, "detail": "no answer within 0.2 s"}
    assert response.json()["checks"]["database"]["ok"] is True


def test_metrics_want_the_bearer_token_when_one_is_set(gateway, settings):
    settings.TOLLWAY_METRICS_TOKEN = "scrape-me-7b1d"

    anonymous = httpx.get(f"{gateway.url}/metrics")
    wrong = httpx.get(f"{gateway.url}/metrics", headers={"authorization": "Bearer scrape-me-7b1e"})
    right = httpx.get(f"{gateway.url}/metrics", headers={"authorization": "Bearer scrape-me-7b1d"})

    assert (anonymous.status_code, wrong.status_code) == (401, 401)
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert "tollway_" not in anonymous.text
    assert right.status_code == 200 and "# TYPE tollway_worker_processes gauge" in right.text
