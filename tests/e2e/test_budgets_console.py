"""Finance and approvers in a real browser, without the REST API: an admin approves a request with its quota
after weighing the team's spend, then creates, corrects, edits and deactivates a budget on the budgets page,
and the finance dashboard's card shows the spend that predates the budget."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing import budgets
from billing.models import Budget
from portal.models import AuditLogEntry, Subscription
from tests.billing.factories import UsageRecordFactory
from tests.e2e.conftest import screenshot
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


def test_an_admin_approves_with_a_quota_and_manages_budgets_in_the_console(page):
    world = build_world()
    world.chat.default_rpm, world.chat.default_tpm, world.chat.monthly_budget_usd = 60, 40000, Decimal("250")
    world.chat.save()
    start, _ = budgets.current_period(Budget(period="monthly"))
    earlier = start + (timezone.now() - start) / 2
    for cost in ("0.006", "0.0042", "0.0068"):  # spent this month, before any budget exists
        UsageRecordFactory(
            tenant=world.tenant, team=world.team, api_key=world.key, created_at=earlier, cost_usd=Decimal(cost),
            prompt_tokens=120, stored_at=timezone.now() - timedelta(minutes=5),
        )  # fmt: skip
    page.on("dialog", lambda dialog: dialog.accept())

    with start_gateway() as gateway:
        base = gateway.url
        sign_in(page, base, "admin@acme.test")

        # The decision shows the product's limits, the team's spend and budgets, and takes a quota.
        page.goto(f"{base}/console/subscriptions/{world.pending.pk}/")
        assert page.get_by_test_id("team-spend-usd").inner_text() == "$0.017"
        assert "40000" in page.get_by_test_id("product-defaults").inner_text()
        decision = page.get_by_test_id("approve-with-quota")
        decision.locator("input[name=rpm_limit]").fill("30")
        decision.locator("input[name=monthly_budget_usd]").fill("0.01")
        screenshot(page, "budgets-01-approval-decision-with-quota")
        decision.get_by_test_id("approve-with-quota-button").click()
        page.wait_for_url(re.compile(r".*/console/subscriptions/$"))
        subscription = Subscription.objects.get(pk=world.pending.pk)
        assert (subscription.status, subscription.rpm_limit) == ("active", 30)
        own = Budget.objects.get(scope="subscription", target_id=subscription.pk)
        assert own.limit_usd == Decimal("0.01")
        assert AuditLogEntry.objects.filter(
            action="subscription.limits_changed", target_id=str(subscription.pk)
        ).exists()

        # The budgets page, from the navigation: a new team budget, first refused beside its field.
        page.goto(f"{base}/console/budgets/")
        page.wait_for_url(re.compile(r".*/console/budgets/$"))
        page.get_by_test_id("new-budget").click()
        form = page.get_by_test_id("budget-form")
        form.locator("select[name=target]").select_option(f"team:{world.team.pk}")
        form.locator("input[name=limit_usd]").fill("0.01")
        form.locator("select[name=action]").select_option("downgrade")
        form.get_by_test_id("save-budget").click()
        error = page.locator("#field-downgrade_alias .field-error")
        assert "downgrade_alias" in error.inner_text() or "downgrade" in error.inner_text().lower()
        screenshot(page, "budgets-02-new-budget-field-error")
        form = page.get_by_test_id("budget-form")
        form.locator("select[name=action]").select_option("block")
        form.get_by_test_id("save-budget").click()
        page.wait_for_url(re.compile(r".*/console/budgets/$"))
        team_budget = Budget.objects.get(scope="team", target_id=world.team.pk)
        assert page.get_by_test_id(f"budget-spent-{team_budget.pk}").inner_text().startswith("$0.017")
        screenshot(page, "budgets-03-budgets-list")

        # The finance card over the spend that predates the budget: 170% of its limit.
        page.goto(f"{base}/console/dashboards/")
        card = page.get_by_test_id(f"budget-{team_budget.pk}")
        assert "$0.017 of $0.01 · 170%" in card.get_by_test_id("budget-spent").inner_text()
        page.wait_for_selector(f"[data-chart='budget-{team_budget.pk}'] .main-svg", timeout=10_000)
        screenshot(page, "budgets-04-finance-budget-card")

        # Edit, then deactivate.
        page.goto(f"{base}/console/budgets/")
        page.get_by_test_id(f"edit-budget-{team_budget.pk}").click()
        page.get_by_test_id("budget-form").locator("input[name=limit_usd]").fill("5")
        page.get_by_test_id("save-budget").click()
        page.wait_for_url(re.compile(r".*/console/budgets/$"))
        team_budget.refresh_from_db()
        assert team_budget.limit_usd == Decimal("5")
        page.get_by_test_id(f"deactivate-budget-{team_budget.pk}").click()
        page.wait_for_url(re.compile(r".*/console/budgets/$"))
        team_budget.refresh_from_db()
        assert not team_budget.is_active
        screenshot(page, "budgets-05-after-deactivation")

        # The keys table shows the key's spend this month.
        page.goto(f"{base}/console/teams/{world.team.pk}/")
        assert page.get_by_test_id(f"key-spend-{world.key.prefix}").inner_text().startswith("$0.017")
        screenshot(page, "budgets-06-keys-table-spend")
    assert not page.console_errors, page.console_errors
