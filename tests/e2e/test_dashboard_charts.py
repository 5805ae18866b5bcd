"""Every dashboard chart in a real browser with 0, 1, 2 and many daily points (30 days, daily): axes labelled
by date (never "00:00:00" or milliseconds), bars and lone points visible, distinct dollar ticks for sub-cent
spend; and names of 100,000 characters that do not widen any table. Screenshots in test-artifacts/e2e/."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from billing.aggregation import histogram_bin
from billing.models import UsageAggregate, UsageRecord
from tests.e2e.conftest import screenshot
from tests.e2e.test_dashboards import open_dashboard, sign_in
from tests.gateway import start_gateway
from tests.portal.test_console_world import build_world

pytestmark = pytest.mark.django_db(transaction=True)

# 100,000 characters fit SQLite's columns; PostgreSQL enforces their length (150 for an alias).
LONG_NAME = "m" * (100_000 if connection.vendor == "sqlite" else UsageAggregate._meta.get_field("alias").max_length)
WIDTH = 1280


def seed(world, *, days: int, alias: str = "gpt-4o-mini", team=None, cost: str = "0.0042") -> None:
    team = team or world.team
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    for days_ago in range(days):
        UsageAggregate.objects.create(
            granularity="day",
            bucket_start=today - timedelta(days=days_ago),
            tenant_id=team.tenant_id,
            tenant_name=team.tenant.name,
            team_id=team.pk,
            team_name=team.name,
            alias=alias,
            deployment=f"{alias[:140]}-main",
            provider="openai",
            status_class="2xx",
            requests=40 + days_ago,
            errors=2,
            error_type="upstream_error",
            fallbacks=1,
            retries=3,
            prompt_tokens=4_000,
            completion_tokens=2_000,
            cost_usd=Decimal(cost) * (1 + days_ago % 3),
            baseline_cost_usd=Decimal(cost) * 2,
            latency_histogram={str(histogram_bin(300.0 + 10 * days_ago)): 40},
            ttfb_histogram={str(histogram_bin(80.0)): 40},
        )


def tick_labels(page, chart: str, axis: str) -> list[str]:
    return page.eval_on_selector_all(f"[data-chart={chart}] .{axis}tick text", "nodes => nodes.map(n => n.textContent)")


def widths(page, selector: str) -> list[float]:
    return page.eval_on_selector_all(selector, "nodes => nodes.map(n => n.getBoundingClientRect().width)")


@pytest.mark.parametrize("days", [0, 1, 2, 30])
def test_every_chart_reads_right_with_0_1_2_and_30_daily_points(page, days):
    world = build_world()
    seed(world, days=days)

    with start_gateway() as gateway:
        sign_in(page, gateway.url, "finance@acme.test")
        open_dashboard(page, f"{gateway.url}/console/dashboards/")
        screenshot(page, f"charts-finance-{days:02d}-points")
        if days == 0:
            assert "No data in this range." in page.locator("[data-chart=cost]").inner_text()
        else:
            y_ticks = tick_labels(page, "cost", "y")
            assert len(y_ticks) >= 2 and len(set(y_ticks)) == len(y_ticks), y_ticks  # not "$0.01, $0.01"
            # Sub-cent steps need more than cents: "$0.0020", not "$0.00".
            assert all(len(label.partition(".")[2]) >= 3 for label in y_ticks), y_ticks
            for chart in ("cost", "savings"):
                x_ticks = tick_labels(page, chart, "x")
                assert x_ticks and not any(":" in label for label in x_ticks), x_ticks  # dates, not 00:00:00
                bars = widths(page, f"[data-chart={chart}] .bars path")
                assert bars and min(bars) >= 5, bars  # a day wide, not a millisecond

        open_dashboard(page, f"{gateway.url}/console/dashboards/operations/")
        screenshot(page, f"charts-operations-{days:02d}-points")
        for chart in ("throughput", "rates", "errors", "latency", "ttfb"):
            if days == 0:
                assert "No data in this range." in page.locator(f"[data-chart={chart}]").inner_text()
                continue
            x_ticks = tick_labels(page, chart, "x")
            assert x_ticks and not any(":" in label for label in x_ticks), (chart, x_ticks)
            if chart != "errors":
                # Each point of the first line is drawn (a line through one point alone draws nothing).
                points = page.eval_on_selector(
                    f"[data-chart={chart}]",
                    "n => n.querySelector('.scatterlayer .trace').querySelectorAll('.points path').length",
                )
                assert points == days, chart
    assert page.console_errors == []


def test_names_of_100000_characters_do_not_widen_any_table(page):
    world = build_world()
    world.team.name = LONG_NAME
    world.team.save(update_fields=["name"])
    seed(world, days=3, alias=LONG_NAME)
    seed(world, days=3, alias="gpt-4o-mini", team=world.other_team, cost="12.5")
    UsageRecord.objects.create(
        request_id="req-long",
        created_at=timezone.now(),
        tenant=world.team.tenant,
        team=world.team,
        team_name=LONG_NAME,
        endpoint="chat.completions",
        alias=LONG_NAME,
        deployment="main",
        status=200,
        cost_usd=Decimal("0.000018"),
    )

    with start_gateway() as gateway:
        sign_in(page, gateway.url, "finance@acme.test")
        for name, path in (
            ("finance", "/console/dashboards/"),
            ("operations", "/console/dashboards/operations/"),
            ("chargeback", "/console/dashboards/chargeback/"),
            ("requests", "/console/requests/"),
            ("usage", "/console/usage/"),
        ):
            page.goto(f"{gateway.url}{path}")
            page.wait_for_load_state("networkidle")
            screenshot(page, f"long-names-{name}")
            assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH, name
            tables = page.eval_on_selector_all(
                "table", "nodes => nodes.map(t => [t.getBoundingClientRect().width, t.closest('.card').clientWidth])"
            )
            assert tables, name
            for table_width, card_width in tables:
                assert table_width <= card_width, (name, table_width, card_width)
            # The full name is still there, in the title of the cell it was cut from.
            if name in ("finance", "usage", "requests"):
                assert page.locator(f'[title^="{LONG_NAME[:50]}"]').count() >= 1, name
    assert page.console_errors == []
