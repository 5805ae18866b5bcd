"""The finance and operations dashboards in a real browser: a finance user sees every team of the tenant, a
member only their team; charts are drawn by the locally served plotly.js, with no console errors."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.aggregation import histogram_bin
from billing.models import UsageAggregate
from tests.e2e.conftest import screenshot
from tests.factories import DeploymentFactory, make_alias
from tests.gateway import start_gateway
from tests.portal.factories import PASSWORD
from tests.portal.test_console_world import build_world

pytestmark = pytest.mark.django_db(transaction=True)


def sign_in(page, base: str, email: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.locator("form button[type=submit], form input[type=submit]").last.click()
    page.wait_for_url(re.compile(r".*/console/.*"))


def seed_usage(world) -> None:
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    for days_ago in range(6):
        for team, alias, deployment, cost in (
            (world.team, "gpt-4o-mini", "main-gpt-4o-mini", "1.25"),
            (world.other_team, "claude-haiku", "anthropic-haiku", "3.5"),
        ):
            UsageAggregate.objects.create(
                granularity="day",
                bucket_start=today - timedelta(days=days_ago),
                tenant_id=team.tenant_id,
                tenant_name=team.tenant.name,
                team_id=team.pk,
                team_name=team.name,
                alias=alias,
                deployment=deployment,
                provider=deployment.split("-")[0],
                status_class="2xx",
                requests=1000 + 100 * days_ago,
                errors=10,
                error_type="",
                fallbacks=5,
                retries=20,
                prompt_tokens=50_000,
                completion_tokens=20_000,
                cost_usd=Decimal(cost),
                baseline_cost_usd=Decimal(cost) * 2,
                latency_histogram={str(histogram_bin(300.0 + 40 * days_ago)): 1000},
                ttfb_histogram={str(histogram_bin(80.0)): 1000},
            )


def legend(page, chart: str) -> list[str]:
    """The names of the traces plotly drew in a chart (plotly keeps them on the chart's element)."""
    return page.eval_on_selector(f"[data-chart={chart}]", "node => (node.data || []).map(trace => trace.name)")


def open_dashboard(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("[data-dashboard][data-loaded]", timeout=15_000)
    assert page.get_attribute("[data-dashboard]", "data-loaded") == "true"


def test_finance_and_a_member_see_their_own_scope_drawn_by_local_plotly(browser):
    world = build_world()
    seed_usage(world)
    make_alias("gpt-4o-mini", DeploymentFactory(name="main-gpt-4o-mini"))

    with start_gateway() as gateway:
        base = gateway.url
        requested: list[str] = []
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.on("request", lambda request: requested.append(request.url))
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))

        # Finance: both teams of Acme, stacked; switching to "Model" redraws the same chart.
        sign_in(page, base, "finance@acme.test")
        open_dashboard(page, f"{base}/console/dashboards/")
        assert sorted(legend(page, "cost")) == ["Checkout", "Search"]
        assert page.get_by_test_id("total-cost").inner_text() == "$28.50"  # 6 days of $1.25 + $3.50
        page.locator("[data-stack=alias]").click()
        page.wait_for_function("() => document.querySelector('[data-chart=cost]').data[0].name !== 'Search'")
        assert sorted(legend(page, "cost")) == ["claude-haiku", "gpt-4o-mini"]
        screenshot(page, "dashboards-01-finance-tenant")
        open_dashboard(page, f"{base}/console/dashboards/operations/")
        assert page.locator("[data-chart=latency] .main-svg").count() > 0
        # The catalogue's deployment, with no failures seen by this process's engine: closed.
        assert page.get_by_test_id("breaker-main-gpt-4o-mini").inner_text().split() == ["main-gpt-4o-mini", "closed"]
        screenshot(page, "dashboards-02-operations-tenant")
        context.close()

        # A member of Checkout: only Checkout, on a phone-sized screen too.
        context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
        context.on("request", lambda request: requested.append(request.url))
        page = context.new_page()
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        sign_in(page, base, "member@acme.test")
        open_dashboard(page, f"{base}/console/dashboards/")
        assert legend(page, "cost") == ["Checkout"]
        assert page.get_by_test_id("total-cost").inner_text() == "$7.50"
        assert "Search" not in page.locator("main").inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
        screenshot(page, "dashboards-03-finance-member-phone")
        open_dashboard(page, f"{base}/console/dashboards/operations/")
        assert "anthropic-haiku" not in page.locator("main").inner_text()
        screenshot(page, "dashboards-04-operations-member-phone")
        context.close()

    assert errors == []
    # plotly.js came from this server, not a CDN.
    assert any("/console/dashboards/plotly-" in url for url in requested)
    assert all(url.startswith(base) or url.startswith("data:") for url in requested)
