"""Budgets and rate limits across two gateway processes on real PostgreSQL + Redis: the limits hold for the
cluster, not per process. Runs where the tests run on PostgreSQL with REDIS_URL set (CI's second run)."""

import asyncio
import time
from collections import Counter
from decimal import Decimal
from urllib.parse import urlsplit

import httpx
import openai
import pytest
from django.conf import settings
from django.db import connection

from billing import budgets
from billing.models import Budget, UsageRecord
from portal import services
from tests.billing.ledger_helpers import COST_PER_CALL, call_concurrently, clear_ledger_in_redis, price_the_catalogue
from tests.billing.tcp_proxy import CuttableProxy
from tests.gateway import wait_for_usage
from tests.gateway_process import GatewayProcess, database_url

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql" or not settings.REDIS_URL,
        reason="needs the production configuration: PostgreSQL and REDIS_URL",
    ),
]


@pytest.fixture
def two_processes(tmp_path, catalogue):
    clear_ledger_in_redis()
    gateway = GatewayProcess(workers=2, outbox_dir=tmp_path / "outbox")
    yield gateway
    gateway.terminate()
    clear_ledger_in_redis()


def test_a_one_dollar_budget_holds_across_two_processes_under_200_concurrent_requests(two_processes, team):
    price_the_catalogue()
    key = services.issue_api_key(team=team, name="busy").secret
    budget = Budget.objects.create(
        tenant=team.tenant, scope="team", target_id=team.pk, period="monthly", limit_usd=Decimal("1")
    )
    two_processes.start()

    results = asyncio.run(call_concurrently([two_processes.url], key, 200))

    answered = [r for r in results if not isinstance(r, openai.APIStatusError)]
    refused = [r for r in results if isinstance(r, openai.APIStatusError)]
    assert {(e.status_code, e.body["code"]) for e in refused} == {(429, "budget_exceeded")}
    records = wait_for_usage(200)
    spent = sum(r.cost_usd for r in records)
    reservation = Decimal("0.047")  # 7 prompt + 20 max_tokens at $1000 / $2000 per million
    assert spent <= budget.limit_usd + reservation
    assert 21 <= len(answered) <= 30 and spent == len(answered) * COST_PER_CALL
    deadline = time.monotonic() + 5
    while budgets.current_spend(budget)["reserved_usd"] and time.monotonic() < deadline:
        time.sleep(0.05)  # the last settles are a round trip behind the responses
    counter = budgets.current_spend(budget)
    assert (counter["source"], counter["spent_usd"], counter["reserved_usd"]) == ("redis", spent, 0)
    assert {r.status for r in records} == {200, 429}


def test_requests_per_minute_hold_within_two_percent_across_two_processes_and_64_clients(two_processes, team):
    limit = 300
    issued = services.issue_api_key(team=team, name="limited", rpm_limit=limit)
    two_processes.start()
    if time.time() % 60 > 45:
        time.sleep(61 - time.time() % 60)  # keep the burst inside one minute window

    async def burst() -> list[httpx.Response]:
        headers = {"authorization": f"Bearer {issued.secret}"}
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
        stop_at = time.monotonic() + 6
        responses: list[httpx.Response] = []
        async with httpx.AsyncClient(base_url=two_processes.url, timeout=30) as client:

            async def one_client():
                while time.monotonic() < stop_at:
                    response = await client.post("/v1/chat/completions", json=body, headers=headers)
                    responses.append(response)

            await asyncio.gather(*(one_client() for _ in range(64)))
        return responses

    responses = asyncio.run(burst())

    admitted = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(responses) > 2 * limit  # the clients asked for far more than the limit
    assert abs(len(admitted) - limit) <= limit * 0.02
    assert admitted[0].headers["x-ratelimit-limit-requests"] == str(limit)
    assert int(admitted[-1].headers["x-ratelimit-remaining-requests"]) < limit
    assert refused[0].json()["error"]["code"] == "requests_per_minute_exceeded"
    assert int(refused[0].headers["retry-after"]) >= 1
    assert refused[0].headers["x-ratelimit-remaining-requests"] == "0"
    records = wait_for_usage(len(responses), timeout_s=20)
    per_minute = Counter(int(r.created_at.timestamp() // 60) for r in records if r.status == 200)
    assert all(abs(n - limit) <= limit * 0.02 for n in per_minute.values())
    assert UsageRecord.objects.count() == len(responses)


def test_with_neither_redis_nor_the_database_answering_limited_calls_fail_closed(tmp_path, catalogue, team):
    limited = services.issue_api_key(team=team, name="limited", rpm_limit=1000).secret
    unlimited = services.issue_api_key(team=team, name="free").secret
    never_used = services.issue_api_key(team=team, name="first used during the outage").secret
    database = urlsplit(database_url())
    redis_address = urlsplit(settings.REDIS_URL)
    pg_proxy = CuttableProxy(database.hostname, database.port or 5432).start()
    redis_proxy = CuttableProxy(redis_address.hostname, redis_address.port or 6379).start()
    env = {
        "DATABASE_URL": database._replace(netloc=f"{database.username}@127.0.0.1:{pg_proxy.port}").geturl(),
        "REDIS_URL": f"redis://127.0.0.1:{redis_proxy.port}{redis_address.path}",
    }
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    try:
        with GatewayProcess(workers=1, env=env, outbox_dir=tmp_path / "outbox") as gateway:

            def call(key: str) -> httpx.Response:
                headers = {"authorization": f"Bearer {key}"}
                return httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers, timeout=30)

            assert call(limited).status_code == 200
            assert call(unlimited).status_code == 200  # both keys are in the process's memory now
            pg_proxy.cut()
            redis_proxy.cut()
            refused = call(limited)
            free = call(unlimited)
            unverifiable = call(never_used)
            ready = httpx.get(f"{gateway.url}/readyz", timeout=10)
    finally:
        pg_proxy.stop()
        redis_proxy.stop()

    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "limits_unavailable"
    assert "try again shortly" in refused.json()["error"]["message"]
    assert free.status_code == 200, free.text  # no limit to check: the gateway still serves from memory
    # A key never seen before cannot be checked without the database: a retryable 503, not a wrong 401.
    assert unverifiable.status_code == 503 and unverifiable.json()["error"]["code"] == "keys_unavailable"
    assert unverifiable.headers["retry-after"] == "1"
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["database"]["ok"] is False and checks["redis"]["ok"] is False
