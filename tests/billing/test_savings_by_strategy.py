"""What each routing policy saved against the baseline: records of three strategies (and calls refused before
routing) roll up per strategy, to the last decimal, in the finance dashboard's table, figure and CSV and in the
usage summary's group_by=strategy; aggregates made before the dimension existed get it by re-aggregation."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from billing.aggregation import aggregate_pending, reaggregate
from billing.dashboards import finance
from billing.dashboards.scope import filters_from
from billing.models import UsageAggregate
from tests.billing.factories import UsageRecordFactory
from tests.portal.factories import token_client
from tests.portal.test_console_world import build_world

pytestmark = pytest.mark.django_db

# Three days ago, so the range is read from daily rows built from hourly ones, and retention never freezes it.
DAY = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
RANGE = {"from": (DAY - timedelta(days=1)).date().isoformat(), "to": timezone.now().date().isoformat()}

# strategy -> [(cost, baseline)] of its calls; sums chosen to need every one of the 10 decimal places.
CALLS = {
    "cascade": [("0.0000012345", "0.0100000000"), ("0.0020000001", "0.0100000000"), ("0.0000000001", "0.0050000000")],
    "learned": [("0.0030000000", "0.0040000000"), ("0.0001234567", "0.0001234567")],
    # A bandit that picked a dearer deployment than the baseline: a negative saving, shown as such.
    "bandit": [("0.0200000000", "0.0150000000")],
}
EXPECTED = {  # strategy -> (requests, cost, baseline, saved, % saved)
    "cascade": (3, Decimal("0.0020012347"), Decimal("0.0250000000"), Decimal("0.0229987653"), Decimal("92.0")),
    "learned": (2, Decimal("0.0031234567"), Decimal("0.0041234567"), Decimal("0.0010000000"), Decimal("24.3")),
    "bandit": (1, Decimal("0.0200000000"), Decimal("0.0150000000"), Decimal("-0.0050000000"), Decimal("-33.3")),
    "": (1, Decimal(0), Decimal(0), Decimal(0), None),
}


@pytest.fixture(autouse=True)
def no_settle_delay(settings):
    settings.TOLLWAY_AGGREGATE_SETTLE_S = 0


@pytest.fixture
def world():
    world = build_world()
    minute = 0
    # Two teams of Acme, two hours of one day, so rows of one strategy are summed across teams and hours.
    for strategy, calls in CALLS.items():
        for cost, baseline in calls:
            team = world.team if minute % 2 else world.other_team
            UsageRecordFactory(
                tenant=team.tenant, team=team, tenant_name=team.tenant.name, team_name=team.name,
                created_at=DAY + timedelta(hours=9 + minute % 2, minutes=minute), strategy=strategy,
                cost_usd=Decimal(cost), baseline_cost_usd=Decimal(baseline),
            )  # fmt: skip
            minute += 1
    # Refused before routing (a bad request): no strategy, no cost.
    UsageRecordFactory(
        tenant=world.tenant, team=world.team, created_at=DAY + timedelta(hours=9), strategy="", status=400,
        attempts=0, cost_usd=Decimal(0), baseline_cost_usd=Decimal(0),
    )  # fmt: skip
    # Another tenant's bandit call: never in Acme's figures.
    rival = world.rival_team
    UsageRecordFactory(
        tenant=rival.tenant, team=rival, created_at=DAY + timedelta(hours=9), strategy="bandit",
        cost_usd=Decimal("7"), baseline_cost_usd=Decimal("9"),
    )  # fmt: skip
    aggregate_pending()
    return world


def by_strategy(rows: list[dict]) -> dict[str, tuple]:
    return {
        row["strategy"]: (
            row["requests"],
            row["cost_usd"].quantize(Decimal("1e-10")),
            row["baseline_cost_usd"].quantize(Decimal("1e-10")),
            row["saved_usd"].quantize(Decimal("1e-10")),
            row["percent_saved"],
        )
        for row in rows
    }


def test_each_strategy_sums_its_own_calls_to_the_last_decimal_in_the_tenants_scope(world):
    filters = filters_from(world.users["finance"], RANGE)
    assert filters.granularity == "day"

    rows = finance.savings_by_strategy(filters)

    assert by_strategy(rows) == EXPECTED
    assert all(isinstance(row[key], Decimal) for row in rows for key in ("cost_usd", "saved_usd", "percent_saved")
               if row[key] is not None)  # fmt: skip
    # Largest saving first; the call never routed says so instead of showing a blank.
    assert [row["strategy_label"] for row in rows] == ["cascade", "learned", "(not routed)", "bandit"]


def test_hourly_rows_give_the_same_sums_as_daily_ones(world):
    day = DAY.date().isoformat()
    filters = filters_from(world.users["finance"], {"from": day, "to": day})
    assert filters.granularity == "hour"

    assert by_strategy(finance.savings_by_strategy(filters)) == EXPECTED


def test_a_member_sees_only_their_teams_calls_per_strategy(world):
    rows = finance.savings_by_strategy(filters_from(world.users["member"], RANGE))

    # Checkout made the odd-numbered calls: cascade's second, learned's first, the bandit's, and the refused one.
    assert by_strategy(rows) == {
        "cascade": (1, Decimal("0.0020000001"), Decimal("0.0100000000"), Decimal("0.0079999999"), Decimal("80.0")),
        "learned": (1, Decimal("0.0030000000"), Decimal("0.0040000000"), Decimal("0.0010000000"), Decimal("25.0")),
        "bandit": EXPECTED["bandit"],
        "": (1, Decimal(0), Decimal(0), Decimal(0), None),
    }


def test_the_finance_page_its_chart_and_its_csv_show_what_each_policy_saved(client, world):
    client.force_login(world.users["finance"])

    page = client.get("/console/dashboards/", RANGE).content.decode()
    assert 'data-testid="table-strategies"' in page
    assert 'data-testid="strategy-cascade"' in page and "92.0%" in page and "-33.3%" in page

    figure = client.get("/console/dashboards/finance/data/", RANGE).json()["strategies"]
    traces = {trace["name"]: dict(zip(trace["x"], trace["y"], strict=True)) for trace in figure["data"]}
    assert traces["Saved"] == {"cascade": 0.0229987653, "learned": 0.001, "(not routed)": 0.0, "bandit": -0.005}
    assert traces["Baseline"]["cascade"] == 0.025 and traces["Cost"]["bandit"] == 0.02

    body = client.get("/console/dashboards/csv/strategies/", RANGE).content.decode()
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0] == ["Routing policy", "Requests", "Cost (USD)", "Baseline cost (USD)", "Saved (USD)", "Saved (%)"]
    assert rows[1] == ["cascade", "3", "0.0020012347", "0.0250000000", "0.0229987653", "92.0"]
    assert rows[-1] == ["bandit", "1", "0.0200000000", "0.0150000000", "-0.0050000000", "-33.3"]


def test_the_usage_summary_groups_by_strategy_with_exact_money(world):
    response = token_client(world.users["finance"]).get(
        "/api/v1/usage/summary", {"group_by": "strategy", "since": (DAY - timedelta(days=1)).date().isoformat()}
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["columns"][0] == "strategy"
    shown = {row["strategy"]: (row["requests"], row["cost_usd"], row["saved_usd"]) for row in body["rows"]}
    assert shown == {
        "bandit": (1, "0.0200000000", "-0.0050000000"),
        "cascade": (3, "0.0020012347", "0.0229987653"),
        "learned": (2, "0.0031234567", "0.0010000000"),
        "": (1, "0.0000000000", "0.0000000000"),
    }


def test_aggregates_made_before_the_strategy_dimension_get_it_by_reaggregation(world):
    # As a database upgraded from before this dimension: every aggregate row says no strategy.
    UsageAggregate.objects.update(strategy="")
    filters = filters_from(world.users["finance"], RANGE)
    assert [row["strategy"] for row in finance.savings_by_strategy(filters)] == [""]

    out = io.StringIO()
    call_command("reaggregate_usage", stdout=out)

    assert "recomputed 3 bucket(s)" in out.getvalue()  # the two hours and their day
    assert by_strategy(finance.savings_by_strategy(filters)) == EXPECTED


def test_reaggregation_leaves_hours_frozen_for_retention_alone(world, settings):
    UsageAggregate.objects.update(strategy="")
    # Retention so short that the records' hours are past its freeze line: their raw records may be half purged.
    settings.TOLLWAY_USAGE_RETENTION_DAYS = 2

    assert reaggregate() == 0
    assert set(UsageAggregate.objects.values_list("strategy", flat=True)) == {""}
