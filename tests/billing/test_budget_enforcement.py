"""Hard budgets under concurrency: reserve-then-settle never lets spend past the limit by more than one
reservation, and the settled counter equals the usage records' cost to the last decimal place.

On the embedded default these run on SQLite with the database store; in CI's second run (REDIS_URL set)
the same tests run against Redis."""

import asyncio
import time
from decimal import Decimal
from urllib.parse import urlsplit

import httpx
import openai
import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from billing import budgets
from billing.ledger.admission import REDIS_RETRY_AFTER_S
from billing.ledger.plan import worst_case
from billing.models import Budget, BudgetAlert, BudgetCounter, UsageRecord
from portal import services
from portal.models import Membership, Notification
from routing.control_plane import snapshot
from tests.billing.factories import UsageRecordFactory
from tests.billing.ledger_helpers import (
    CHAT,
    COST_PER_CALL,
    call_concurrently,
    clear_ledger_in_redis,
    price_the_catalogue,
)
from tests.billing.tcp_proxy import CuttableProxy
from tests.factories import make_alias
from tests.gateway import start_gateway, wait_for_usage
from tests.portal.factories import UserFactory
from tests.upstreams.server import free_port

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_ledger():
    clear_ledger_in_redis()
    yield
    clear_ledger_in_redis()


def reservation_per_call() -> Decimal:
    return worst_case(CHAT, snapshot.current().aliases["gpt-4o-mini"], endpoint="chat.completions").cost_usd


def test_200_concurrent_requests_never_overspend_a_one_dollar_budget(catalogue, team):
    price_the_catalogue()
    key = services.issue_api_key(team=team, name="busy").secret
    budget = Budget.objects.create(
        tenant=team.tenant, scope="team", target_id=team.pk, period="monthly", limit_usd=Decimal("1")
    )

    with start_gateway() as gateway:
        results = asyncio.run(call_concurrently([gateway.url], key, 200))
        reservation = reservation_per_call()

    refused = [r for r in results if isinstance(r, openai.APIStatusError)]
    answered = [r for r in results if not isinstance(r, openai.APIStatusError)]
    assert refused and answered
    assert {(e.status_code, e.body["code"]) for e in refused} == {(429, "budget_exceeded")}
    records = wait_for_usage(200)
    assert len(records) == 200
    spent = sum(r.cost_usd for r in records)
    assert spent == len(answered) * COST_PER_CALL
    assert spent <= budget.limit_usd + reservation
    # Worst-case reservations alone admit 21 calls ($0.047 each); settled at $0.033, at most 30 fit in $1.
    assert reservation == Decimal("0.047")
    assert 21 <= len(answered) <= 30
    counter = budgets.current_spend(budget)
    assert counter["spent_usd"] == spent  # exact: settled to the records' cost, to 1e-10 USD
    assert counter["reserved_usd"] == 0


def test_a_token_budget_on_a_key_refuses_once_its_tokens_are_reserved(catalogue, team):
    issued = services.issue_api_key(team=team, name="small")
    Budget.objects.create(tenant=team.tenant, scope="key", target_id=issued.api_key.pk, period="daily", limit_tokens=60)

    with start_gateway() as gateway:
        results = asyncio.run(call_concurrently([gateway.url], issued.secret, 4, concurrency=1))

    # Each call reserves 7 prompt + 20 output tokens and settles to 21: two fit (48), a third would reach 69.
    codes = [getattr(r, "status_code", 200) for r in results]
    assert codes == [200, 200, 429, 429]
    assert results[3].body["code"] == "budget_exceeded" and results[3].body["type"] == "insufficient_quota"


def test_a_downgrade_budget_routes_to_the_cheaper_alias_instead_of_refusing(catalogue, team):
    price_the_catalogue()
    cheap = make_alias("cheap-mini", catalogue.deployments.get(name="main-gpt-4o-mini"))
    key = services.issue_api_key(team=team, name="frugal").secret
    Budget.objects.create(
        tenant=team.tenant,
        scope="tenant",
        target_id=team.tenant.pk,
        period="daily",
        limit_usd=Decimal("0.05"),
        action="downgrade",
        downgrade_alias=cheap.name,
    )

    with start_gateway() as gateway:
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
        first = client.chat.completions.with_raw_response.create(**CHAT)
        second = client.chat.completions.with_raw_response.create(**CHAT)

    assert "x-tollway-downgraded-from" not in first.headers
    assert second.headers["x-tollway-downgraded-from"] == "gpt-4o-mini"
    records = wait_for_usage(2)
    assert [r.alias for r in records] == ["gpt-4o-mini", cheap.name]
    assert all(r.status == 200 for r in records)


def test_thresholds_notify_once_per_period_in_app_and_by_email(catalogue, team, mailoutbox):
    price_the_catalogue()
    finance = UserFactory(email="finance@acme.test")
    Membership.objects.create(user=finance, tenant=team.tenant, role=Membership.Role.FINANCE)
    key = services.issue_api_key(team=team, name="k").secret
    budget = Budget.objects.create(
        tenant=team.tenant,
        scope="team",
        target_id=team.pk,
        period="monthly",
        limit_usd=Decimal("0.2"),
        thresholds=[50, 80, 100],
    )

    with start_gateway() as gateway:
        asyncio.run(call_concurrently([gateway.url], key, 8, concurrency=1))

    # Five calls fit in $0.20 ($0.165 spent, 82.5%); the sixth would need $0.047 more. 100% is never reached.
    alerts = sorted(BudgetAlert.objects.filter(budget=budget).values_list("threshold", flat=True))
    assert alerts == [50, 80]
    inbox = list(Notification.objects.filter(user=finance).values_list("subject", flat=True))
    assert sorted(inbox) == [f"Budget at 50%: team {team.pk} (monthly)", f"Budget at 80%: team {team.pk} (monthly)"]
    emailed = sorted(m.subject for m in mailoutbox if m.to == ["finance@acme.test"])
    assert emailed == sorted(inbox)


def test_reconciliation_finds_no_drift_after_traffic_and_restores_a_lost_counter(catalogue, team):
    price_the_catalogue()
    key = services.issue_api_key(team=team, name="k").secret
    budget = Budget.objects.create(
        tenant=team.tenant, scope="team", target_id=team.pk, period="monthly", limit_usd=Decimal("10")
    )
    with start_gateway() as gateway:
        asyncio.run(call_concurrently([gateway.url], key, 6, concurrency=3))
    wait_for_usage(6)
    recorded = sum(UsageRecord.objects.values_list("cost_usd", flat=True))

    assert [row["drift_usd"] for row in budgets.reconcile()] == [0]

    clear_ledger_in_redis()  # Redis restarted empty (a no-op on the embedded default)
    if budgets.current_spend(budget)["source"] == "redis":
        assert budgets.current_spend(budget)["spent_usd"] == 0
        budgets.reconcile()
    assert budgets.current_spend(budget)["spent_usd"] == recorded == 6 * COST_PER_CALL


def test_with_redis_unreachable_the_database_enforces_budgets_exactly(catalogue, team, caplog):
    price_the_catalogue()
    key = services.issue_api_key(team=team, name="k").secret
    budget = Budget.objects.create(
        tenant=team.tenant, scope="team", target_id=team.pk, period="daily", limit_usd=Decimal("0.5")
    )
    closed = f"redis://127.0.0.1:{free_port()}/0"

    with override_settings(REDIS_URL=closed), start_gateway() as gateway:
        results = asyncio.run(call_concurrently([gateway.url], key, 60, concurrency=30))
        ready = httpx.get(f"{gateway.url}/readyz", timeout=10).json()

    answered = [r for r in results if not isinstance(r, openai.APIStatusError)]
    records = wait_for_usage(60)
    spent = sum(r.cost_usd for r in records)
    assert 10 <= len(answered) <= 15  # $0.047 reservations admit at least 10; $0.033 calls at most 15 in $0.50
    assert spent == len(answered) * COST_PER_CALL <= budget.limit_usd
    counter = BudgetCounter.objects.get(budget=budget)
    assert (counter.spent_usd, counter.reserved_usd) == (spent, 0)
    assert "Redis unreachable" in caplog.text and "enforced through the database" in caplog.text
    assert ready["checks"]["limits"] == {
        "ok": True,
        "detail": {"mode": "database-fallback", "enforced_in": "database (Redis unreachable: fallback, slower)"},
    }


def test_streams_and_abandoned_streams_settle_to_their_records_cost(catalogue, team):
    price_the_catalogue()
    key = services.issue_api_key(team=team, name="k").secret
    budget = Budget.objects.create(
        tenant=team.tenant, scope="team", target_id=team.pk, period="monthly", limit_usd=Decimal("100")
    )
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}

    async def streams(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {key}"}) as client:
            for i in range(6):
                async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                    assert response.status_code == 200
                    async for _ in response.aiter_bytes():
                        if i % 2:
                            break  # walk away after the first chunk

    with start_gateway() as gateway:
        asyncio.run(streams(gateway.url))

    records = wait_for_usage(6)
    spent = sum(r.cost_usd for r in records)
    assert spent > 0
    counter = budgets.current_spend(budget)
    assert (counter["spent_usd"], counter["reserved_usd"]) == (spent, 0)


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs a real Redis to take away (REDIS_URL)")
def test_a_budget_stays_exact_while_redis_goes_away_and_comes_back(catalogue, team):
    price_the_catalogue()
    key = services.issue_api_key(team=team, name="k").secret
    budget = Budget.objects.create(
        tenant=team.tenant, scope="team", target_id=team.pk, period="daily", limit_usd=Decimal("0.5")
    )
    redis_address = urlsplit(settings.REDIS_URL)
    target = (redis_address.hostname, redis_address.port or 6379)
    proxy = CuttableProxy(*target).start()
    through_proxy = f"redis://127.0.0.1:{proxy.port}{redis_address.path}"
    try:
        with override_settings(REDIS_URL=through_proxy), start_gateway() as gateway:
            before = asyncio.run(call_concurrently([gateway.url], key, 5, concurrency=1))
            wait_for_usage(5)  # $0.165 settled in Redis, and on record
            proxy.cut()
            during = asyncio.run(call_concurrently([gateway.url], key, 3, concurrency=1))
            ready = httpx.get(f"{gateway.url}/readyz", timeout=10).json()
            wait_for_usage(8)
            proxy = CuttableProxy(*target, port=proxy.port).start()  # Redis is back
            time.sleep(REDIS_RETRY_AFTER_S + 0.5)
            after = asyncio.run(call_concurrently([gateway.url], key, 20, concurrency=4))
    finally:
        proxy.stop()

    answered = [r for r in before + during + after if not isinstance(r, openai.APIStatusError)]
    records = wait_for_usage(28)
    spent = sum(r.cost_usd for r in records)
    assert ready["checks"]["limits"]["detail"]["mode"] == "database-fallback"
    assert [isinstance(r, openai.APIStatusError) for r in before + during] == [False] * 8
    # Each store that takes over starts from the records: without that, the database would start from $0 and
    # Redis, back, would not know the fallback's $0.099, and more calls would be admitted ($0.56 and more).
    assert spent == len(answered) * COST_PER_CALL <= budget.limit_usd
    counter = budgets.current_spend(budget)
    assert (counter["source"], counter["spent_usd"], counter["reserved_usd"]) == ("redis", spent, 0)


def test_a_budget_with_both_a_dollar_and_a_token_limit_counts_both(catalogue, team):
    price_the_catalogue()
    key = services.issue_api_key(team=team, name="k").secret
    budget = Budget.objects.create(
        tenant=team.tenant,
        scope="team",
        target_id=team.pk,
        period="monthly",
        limit_usd=Decimal("0.2"),
        limit_tokens=10_000,
    )

    with start_gateway() as gateway:
        results = asyncio.run(call_concurrently([gateway.url], key, 8, concurrency=1))

    # The dollars run out first: five calls fit in $0.20 (see the thresholds test), tokens are far from 10,000.
    assert [isinstance(r, openai.APIStatusError) for r in results] == [False] * 5 + [True] * 3
    records = wait_for_usage(8)
    counter = budgets.current_spend(budget)
    assert (counter["spent_usd"], counter["reserved_usd"]) == (5 * COST_PER_CALL, 0)
    assert (counter["spent_tokens"], counter["reserved_tokens"]) == (
        sum(r.prompt_tokens + r.completion_tokens for r in records),
        0,
    )


def spent_already_this_month(team, usd: str) -> None:
    """A record of this period from before the budget existed (say, from yesterday)."""
    UsageRecordFactory(tenant=team.tenant, team=team, created_at=timezone.now(), cost_usd=Decimal(usd))


def test_a_budget_created_over_spend_already_recorded_this_month_blocks_the_next_call(catalogue, team):
    price_the_catalogue()
    key = services.issue_api_key(team=team, name="k").secret
    spent_already_this_month(team, "2.5")
    budget = Budget.objects.create(
        tenant=team.tenant, scope="team", target_id=team.pk, period="monthly", limit_usd=Decimal("2")
    )

    with start_gateway() as gateway:
        results = asyncio.run(call_concurrently([gateway.url], key, 2, concurrency=1))

    assert [getattr(r, "status_code", 200) for r in results] == [429, 429]
    assert results[0].body["code"] == "budget_exceeded"
    assert budgets.current_spend(budget)["spent_usd"] == Decimal("2.5")  # raised to the records, in either store


def test_a_new_budget_counts_what_its_scope_spent_earlier_in_the_period_toward_its_limit(catalogue, team):
    price_the_catalogue()
    key = services.issue_api_key(team=team, name="k").secret
    spent_already_this_month(team, "1.9")
    budget = Budget.objects.create(
        tenant=team.tenant, scope="team", target_id=team.pk, period="monthly", limit_usd=Decimal("2")
    )

    with start_gateway() as gateway:
        results = asyncio.run(call_concurrently([gateway.url], key, 4, concurrency=1))

    # $1.90 + a $0.047 reservation fits twice (each settles to $0.033); the third would reach $2.013.
    assert [getattr(r, "status_code", 200) for r in results] == [200, 200, 429, 429]
    wait_for_usage(5)
    deadline = time.monotonic() + 5
    while budgets.current_spend(budget)["reserved_usd"] and time.monotonic() < deadline:
        time.sleep(0.05)  # the last settle is a moment behind its response
    assert budgets.current_spend(budget)["spent_usd"] == Decimal("1.9") + 2 * COST_PER_CALL
