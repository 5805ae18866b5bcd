import asyncio

import httpx
import pytest

from routing.observability import readiness
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


def test_readyz_names_redis_when_redis_does_not_answer(gateway, redis_unreachable):
    response = httpx.get(f"{gateway.url}/readyz", timeout=10)

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["checks"]["redis"]["ok"] is False
    assert "ConnectionError" in body["checks"]["redis"]["detail"]
    assert body["checks"]["database"]["ok"] is True


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
