"""A budget's spend is one figure: the finance card, its burn-down chart and /api/v1/budgets/ show the recorded
spend of the budget's scope over its whole period, including what was spent before the budget was created."""

from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing import budgets
from billing.aggregation import aggregate_bucket, aggregate_pending
from billing.models import Budget, UsageRecord
from tests.billing.factories import UsageRecordFactory
from tests.portal.factories import token_client
from tests.portal.test_console_world import build_world

pytestmark = pytest.mark.django_db

FINANCE, FINANCE_DATA = "/console/dashboards/", "/console/dashboards/finance/data/"


@pytest.fixture
def world():
    return build_world()


def spend_before_the_budget(world, costs_and_tokens, *, period="monthly"):
    """Records of this period made before any budget exists: the first half folded into aggregates, the rest
    still raw (newer than the last aggregation)."""
    now = timezone.now()
    start, _ = budgets.current_period(Budget(period=period))
    created_at = start + (now - start) / 2
    half = len(costs_and_tokens) // 2
    for cost, tokens in costs_and_tokens[:half]:
        UsageRecordFactory(
            tenant=world.tenant, team=world.team, api_key=world.key, created_at=created_at, cost_usd=cost,
            prompt_tokens=tokens, stored_at=now - timedelta(minutes=10),
        )  # fmt: skip
    assert aggregate_pending() > 0
    for cost, tokens in costs_and_tokens[half:]:
        UsageRecordFactory(
            tenant=world.tenant, team=world.team, api_key=world.key, created_at=created_at, cost_usd=cost,
            prompt_tokens=tokens,
        )  # fmt: skip
    # Another team's spend must not count.
    UsageRecordFactory(tenant=world.tenant, team=world.other_team, created_at=created_at, cost_usd=Decimal("5"))


def three_readings(client, admin, budget):
    client.force_login(admin)
    card = dict((b.pk, burn) for b, _, burn in client.get(FINANCE).context["burn_downs"])[budget.pk]
    chart = client.get(FINANCE_DATA).json()["budgets"][str(budget.pk)]
    spent_line = next(trace for trace in chart["data"] if trace["name"] in ("Spent", "Tokens used"))
    rest = token_client(admin).get(f"/api/v1/budgets/{budget.pk}").json()
    return card, spent_line["y"][-1], rest


def test_a_budget_made_mid_month_over_earlier_spend_shows_that_spend_on_its_card_chart_and_api(client, world):
    spend_before_the_budget(world, [(Decimal("0.006"), 10), (Decimal("0.0042"), 20), (Decimal("0.0068"), 30)])
    admin = world.users["tenant_admin"]
    budget = budgets.create_budget(
        tenant=world.tenant, created_by=admin, scope="team", target_id=world.team.pk, period="monthly",
        limit_usd=Decimal("0.01"), thresholds=[100],
    )  # fmt: skip

    card, chart_last, rest = three_readings(client, admin, budget)

    assert card.spent == Decimal("0.017")
    assert round(Decimal(str(chart_last)), 2) == round(card.spent, 2) == round(Decimal(rest["spent_usd"]), 2)
    assert Decimal(rest["spent_usd"]) == card.spent  # to the 10th decimal, not only the cent
    assert card.used_percent == pytest.approx(170)
    page = client.get(FINANCE).content.decode()
    assert "$0.017 of $0.01 · 170%" in page or "$0.0170 of $0.01 · 170%" in page


def test_a_token_budget_counts_the_tokens_recorded_before_it_everywhere(client, world):
    spend_before_the_budget(world, [(Decimal("0.001"), 400), (Decimal("0.001"), 350)])
    admin = world.users["tenant_admin"]
    budget = budgets.create_budget(
        tenant=world.tenant, created_by=admin, scope="key", target_id=world.key.pk, period="monthly",
        limit_tokens=1000, thresholds=[100],
    )  # fmt: skip

    card, chart_last, rest = three_readings(client, admin, budget)

    assert card.unit == "tokens" and card.spent == 750
    assert chart_last == 750 and rest["spent_tokens"] == 750
    assert Decimal(rest["spent_usd"]) == Decimal("0.002")


def test_the_spend_definition_counts_each_record_once_whether_aggregated_or_not(world):
    spend_before_the_budget(world, [(Decimal("0.25"), 1), (Decimal("0.5"), 2), (Decimal("1"), 4), (Decimal("2"), 8)])
    budget = Budget(tenant=world.tenant, scope="team", target_id=world.team.pk, period="monthly")
    start, end = budgets.current_period(budget)
    raw = UsageRecord.objects.filter(team=world.team)

    assert budgets.recorded_spend(budget, start, end) == (Decimal("3.75"), 15)
    # Once everything is aggregated (the records are old enough), the figure does not change.
    aggregate_pending(now=timezone.now() + timedelta(minutes=5))
    assert budgets.recorded_spend(budget, start, end) == (Decimal("3.75"), 15)
    # And it still holds once retention has purged the raw records of aggregated hours.
    raw.delete()
    assert budgets.recorded_spend(budget, start, end) == (Decimal("3.75"), 15)


def test_a_record_folded_into_its_hour_after_the_last_full_run_is_counted_once(world):
    # The cursor of the last full run is behind the record, but its hour was recomputed since (as a concurrent
    # worker does): the hourly aggregate holds it, so the raw side must not count it again.
    now = timezone.now()
    budget = Budget(tenant=world.tenant, scope="team", target_id=world.team.pk, period="monthly")
    start, end = budgets.current_period(budget)
    hour = max(start, now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1))
    aggregate_pending(now=now)
    UsageRecordFactory(tenant=world.tenant, team=world.team, created_at=hour, cost_usd=Decimal("0.3"), stored_at=now)
    aggregate_bucket("hour", hour, now=now + timedelta(minutes=1))

    assert budgets.recorded_spend(budget, start, end) == (Decimal("0.3"), 9)


@contextmanager
def held_in_flight(budget: Budget, usd: Decimal):
    """What a call still running holds against the budget, in whichever store the ledger uses now (a Redis
    counter is removed afterwards: the ledger's own tests scan every counter in the database)."""
    from billing.ledger.counters import usd_to_ticks
    from billing.ledger.stores import KEY_PREFIX
    from billing.models import BudgetCounter

    start, _ = budgets.current_period(budget)
    if budgets.current_spend(budget)["source"] != "redis":
        BudgetCounter.objects.create(budget=budget, period_start=start, reserved_usd=usd)
        yield
        return
    key = KEY_PREFIX + budgets.counter_keys(budget, start)[0]
    budgets.redis_client().hset(key, mapping={"s": 0, "r": usd_to_ticks(usd)})
    try:
        yield
    finally:
        budgets.redis_client().delete(key)


def test_what_calls_in_flight_hold_is_shown_beside_the_spend_never_in_it(client, world):
    spend_before_the_budget(world, [(Decimal("0.5"), 1), (Decimal("0.25"), 1)], period="daily")
    admin = world.users["tenant_admin"]
    budget = budgets.create_budget(
        tenant=world.tenant, created_by=admin, scope="team", target_id=world.team.pk, period="daily",
        limit_usd=Decimal("2"), thresholds=[100],
    )  # fmt: skip

    with held_in_flight(budget, Decimal("0.125")):
        card, chart_last, rest = three_readings(client, admin, budget)
        page = client.get(FINANCE).content.decode()

    assert (card.spent, card.reserved) == (Decimal("0.75"), Decimal("0.125"))
    assert (rest["spent_usd"], rest["reserved_usd"]) == ("0.7500000000", "0.1250000000")
    assert chart_last == 0.75
    assert 'data-testid="budget-reserved">$0.125 held by calls still running' in page
