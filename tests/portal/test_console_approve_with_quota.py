"""The approval decision shows what an approver weighs (the product's limits and budget, the team's spend this
month and its budgets) and lets them set the subscription's RPM/TPM and monthly budget, then or later."""

from decimal import Decimal

import pytest
from django.urls import reverse

from billing import budgets
from billing.models import Budget
from portal.models import AuditLogEntry, Subscription
from tests.billing.factories import UsageRecordFactory
from tests.portal.test_console_world import build_world


@pytest.fixture
def world(db):
    world = build_world()
    world.chat.default_rpm, world.chat.default_tpm, world.chat.monthly_budget_usd = 60, 40000, Decimal("250")
    world.chat.save()
    return world


def page_of(client, subscription) -> str:
    return client.get(reverse("console:subscription", args=[subscription.pk])).content.decode()


def test_the_decision_shows_the_products_limits_and_the_teams_spend_and_budgets(client, world):
    start, _ = budgets.current_period(Budget(period="monthly"))
    UsageRecordFactory(
        tenant=world.tenant, team=world.team, created_at=start, cost_usd=Decimal("12.34"), prompt_tokens=5000
    )
    UsageRecordFactory(tenant=world.tenant, team=world.other_team, created_at=start, cost_usd=Decimal("99"))
    team_budget = Budget.objects.create(
        tenant=world.tenant, scope="team", target_id=world.team.pk, period="monthly", limit_usd=Decimal("100")
    )
    client.force_login(world.users["tenant_admin"])

    page = page_of(client, world.pending)

    defaults = page[page.index('data-testid="product-defaults"') :]
    assert "60" in defaults[:400] and "40000" in defaults[:400] and "$250.00" in defaults[:400]
    assert page.count('<strong data-testid="team-spend-usd">$12.34</strong>') == 1  # in the page, not its <title>
    assert "<section" not in page[page.index("<title>") : page.index("</title>")]
    assert f'data-testid="team-budget-{team_budget.pk}"' in page
    assert 'data-testid="approve-with-quota"' in page


def test_approving_with_a_quota_gives_the_subscription_those_limits_and_budget_audited(client, world):
    admin = world.users["tenant_admin"]
    client.force_login(admin)

    response = client.post(
        reverse("console:subscription-approve", args=[world.pending.pk]),
        {"set_quota": "1", "rpm_limit": "30", "tpm_limit": "", "monthly_budget_usd": "75.5", "reason": "go"},
    )

    assert response.status_code == 302
    subscription = Subscription.objects.get(pk=world.pending.pk)
    assert (subscription.status, subscription.rpm_limit, subscription.tpm_limit) == ("active", 30, None)
    budget = Budget.objects.get(scope="subscription", target_id=subscription.pk, is_active=True)
    assert (budget.period, budget.limit_usd, budget.action) == ("monthly", Decimal("75.5"), "block")
    actions = set(AuditLogEntry.objects.filter(actor=admin).values_list("action", flat=True))
    assert {"subscription.approved", "subscription.limits_changed", "budget.created"} <= actions
    limits = AuditLogEntry.objects.get(action="subscription.limits_changed")
    assert limits.details == {"before": {"rpm_limit": None}, "after": {"rpm_limit": 30}}


def test_approving_with_an_empty_budget_gives_no_budget_even_when_the_product_has_one(client, world):
    client.force_login(world.users["tenant_admin"])

    client.post(
        reverse("console:subscription-approve", args=[world.pending.pk]),
        {"set_quota": "1", "rpm_limit": "", "tpm_limit": "", "monthly_budget_usd": ""},
    )

    assert Subscription.objects.get(pk=world.pending.pk).status == "active"
    assert not Budget.objects.filter(scope="subscription", target_id=world.pending.pk).exists()


def test_a_bad_quota_is_refused_beside_its_field_and_nothing_is_approved(client, world):
    client.force_login(world.users["tenant_admin"])

    response = client.post(
        reverse("console:subscription-approve", args=[world.pending.pk]),
        {"set_quota": "1", "rpm_limit": "0", "tpm_limit": "", "monthly_budget_usd": "-3"},
    )

    assert response.status_code == 200
    assert set(response.context["quota_form"].errors) == {"rpm_limit", "monthly_budget_usd"}
    assert Subscription.objects.get(pk=world.pending.pk).status == "pending"


def test_the_one_click_approval_still_applies_the_products_defaults(client, world):
    client.force_login(world.users["tenant_admin"])

    client.post(reverse("console:subscription-approve", args=[world.pending.pk]), {"reason": ""})

    budget = Budget.objects.get(scope="subscription", target_id=world.pending.pk)
    assert budget.limit_usd == Decimal("250")
    assert AuditLogEntry.objects.filter(action="budget.created", target_id=str(budget.pk)).exists()


def test_an_admin_changes_the_quota_of_an_active_subscription_later(client, world):
    admin = world.users["tenant_admin"]
    client.force_login(admin)
    client.post(reverse("console:subscription-approve", args=[world.pending.pk]), {"reason": ""})
    url = reverse("console:subscription-quota", args=[world.pending.pk])

    assert 'data-testid="quota-form"' in page_of(client, world.pending)
    client.post(url, {"rpm_limit": "10", "tpm_limit": "2000", "monthly_budget_usd": "20"})

    subscription = Subscription.objects.get(pk=world.pending.pk)
    assert (subscription.rpm_limit, subscription.tpm_limit) == (10, 2000)
    budget = Budget.objects.get(scope="subscription", target_id=subscription.pk)
    assert budget.limit_usd == Decimal("20") and budget.is_active
    assert AuditLogEntry.objects.filter(action="budget.updated", target_id=str(budget.pk), actor=admin).exists()

    client.post(url, {"rpm_limit": "10", "tpm_limit": "2000", "monthly_budget_usd": ""})

    budget.refresh_from_db()
    assert not budget.is_active
    assert AuditLogEntry.objects.filter(action="budget.deactivated", target_id=str(budget.pk)).exists()


@pytest.mark.parametrize("role, status", [("team_owner", 403), ("finance", 403), ("other_tenant_admin", 404)])
def test_only_the_tenants_admins_set_a_quota(client, world, role, status):
    world.pending.status = Subscription.Status.ACTIVE
    world.pending.save()
    client.force_login(world.users[role])

    response = client.post(
        reverse("console:subscription-quota", args=[world.pending.pk]),
        {"rpm_limit": "1", "tpm_limit": "", "monthly_budget_usd": "1"},
    )

    assert response.status_code == status
    assert Subscription.objects.get(pk=world.pending.pk).rpm_limit is None
    assert not Budget.objects.filter(scope="subscription", target_id=world.pending.pk).exists()
