"""The console's budgets page: the list with spent and limit, and create, edit and deactivate for admins,
through the same services (and audit) as /api/v1/budgets/."""

from decimal import Decimal

import pytest
from django.urls import reverse

from billing import budgets
from billing.models import Budget
from portal.models import AuditLogEntry
from routing.models import ModelAlias
from tests.billing.factories import UsageRecordFactory
from tests.portal.test_console_world import ROLES, build_world

LIST, NEW = reverse("console:budgets"), reverse("console:budget-new")


@pytest.fixture
def world(db):
    return build_world()


def team_budget(world, team=None, **fields) -> Budget:
    team = team or world.team
    values = {"scope": "team", "target_id": team.pk, "period": "monthly", "limit_usd": Decimal("10")} | fields
    return Budget.objects.create(tenant=team.tenant, **values)


def form_body(**fields) -> dict:
    return {"period": "monthly", "action": "block", "thresholds": "80, 100", "is_active": "on"} | fields


def test_a_tenant_admin_creates_a_team_budget_from_the_console(client, world):
    admin = world.users["tenant_admin"]
    client.force_login(admin)

    response = client.post(
        NEW, form_body(target=f"team:{world.team.pk}", limit_usd="25.50", limit_tokens="100000", thresholds="100, 50")
    )

    assert response.status_code == 302 and response["Location"] == LIST
    budget = Budget.objects.get()
    assert (budget.tenant, budget.scope, budget.target_id, budget.period) == (
        world.tenant,
        "team",
        world.team.pk,
        "monthly",
    )
    assert (budget.limit_usd, budget.limit_tokens, budget.thresholds) == (Decimal("25.5"), 100000, [50, 100])
    entry = AuditLogEntry.objects.get(action="budget.created", target_id=str(budget.pk))
    assert entry.actor == admin
    listed = client.get(LIST).content.decode()
    assert f'data-testid="budget-row-{budget.pk}"' in listed and "$25.50" in listed


def test_the_form_offers_only_the_admins_own_tenants_targets(client, world):
    client.force_login(world.users["tenant_admin"])

    choices = {value for _, group in client.get(NEW).context["form"].fields["target"].choices for value, _ in group}

    assert {f"tenant:{world.tenant.pk}", f"team:{world.team.pk}", f"key:{world.key.pk}"} <= choices
    assert f"subscription:{world.active.pk}" in choices
    assert f"team:{world.rival_team.pk}" not in choices and f"key:{world.rival_key.pk}" not in choices
    refused = client.post(NEW, form_body(target=f"team:{world.rival_team.pk}", limit_usd="5"))
    assert refused.status_code == 200 and "target" in refused.context["form"].errors
    assert not Budget.objects.exists()


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"limit_usd": "", "limit_tokens": ""}, "limit_usd"),
        ({"limit_usd": "0"}, "limit_usd"),
        ({"action": "downgrade"}, "downgrade_alias"),
        ({"thresholds": "fifty"}, "thresholds"),
        ({"thresholds": "0, 80"}, "thresholds"),
        ({"period": "weekly"}, "period"),
        ({"webhook_url": "http://10.0.0.8/hook"}, "webhook_url"),
    ],
)
def test_a_bad_budget_is_refused_with_the_error_beside_its_field(client, world, fields, field):
    client.force_login(world.users["tenant_admin"])

    response = client.post(NEW, form_body(target=f"team:{world.team.pk}", limit_usd="5") | fields)

    assert response.status_code == 200 and field in response.context["form"].errors
    page = response.content.decode()
    field_html = page[page.index(f'id="field-{field}"') :]
    assert 'class="field-error"' in field_html[: field_html.index("</div>")]
    assert not Budget.objects.exists()


def test_a_tenant_admin_edits_a_budget_to_downgrade_and_its_spend_is_shown(client, world):
    ModelAlias.objects.create(name="small-model")
    budget = team_budget(world)
    start, _ = budgets.current_period(budget)
    UsageRecordFactory(tenant=world.tenant, team=world.team, created_at=start, cost_usd=Decimal("1.25"))
    client.force_login(world.users["tenant_admin"])
    url = reverse("console:budget", args=[budget.pk])

    assert "$1.25" in client.get(url).content.decode()
    response = client.post(
        url,
        form_body(target=f"team:{world.team.pk}", period="daily", limit_usd="3", action="downgrade",
                  downgrade_alias="small-model"),
    )  # fmt: skip

    assert response.status_code == 302
    budget.refresh_from_db()
    assert (budget.period, budget.limit_usd, budget.action, budget.downgrade_alias) == (
        "daily",
        Decimal("3"),
        "downgrade",
        "small-model",
    )
    assert AuditLogEntry.objects.filter(action="budget.updated", target_id=str(budget.pk)).exists()


def test_a_refused_edit_leaves_the_budget_as_it_was(client, world):
    budget = team_budget(world)
    client.force_login(world.users["tenant_admin"])

    response = client.post(
        reverse("console:budget", args=[budget.pk]), form_body(target=f"team:{world.team.pk}", limit_usd="-1")
    )

    assert "limit_usd" in response.context["form"].errors
    budget.refresh_from_db()
    assert budget.limit_usd == Decimal("10")


def test_deactivating_a_budget_stops_it_and_is_audited(client, world):
    budget = team_budget(world)
    client.force_login(world.users["tenant_admin"])

    response = client.post(reverse("console:budget-deactivate", args=[budget.pk]))

    assert response.status_code == 302
    budget.refresh_from_db()
    assert not budget.is_active
    assert AuditLogEntry.objects.filter(action="budget.deactivated", target_id=str(budget.pk)).exists()
    assert f'budget-row-{budget.pk}"' not in client.get(LIST).content.decode()
    assert f'budget-row-{budget.pk}"' in client.get(LIST, {"show": "inactive"}).content.decode()


# Who may do what: another tenant's budget is a 404 whatever the role; inside the tenant, only admins write.
CHANGE = {
    "member": 403,
    "team_owner": 403,
    "finance": 403,
    "tenant_admin": 200,
    "platform_admin": 200,
    "other_tenant_admin": 404,
}


@pytest.mark.parametrize("role", ROLES)
def test_only_admins_of_the_budgets_tenant_open_and_deactivate_it(client, world, role):
    budget = team_budget(world)
    client.force_login(world.user(role))

    opened = client.get(reverse("console:budget", args=[budget.pk]))
    deactivated = client.post(reverse("console:budget-deactivate", args=[budget.pk]))

    assert opened.status_code == CHANGE[role]
    assert deactivated.status_code == (302 if CHANGE[role] == 200 else CHANGE[role])
    budget.refresh_from_db()
    assert budget.is_active == (CHANGE[role] != 200)


@pytest.mark.parametrize("role", ROLES)
def test_only_admins_may_create_budgets(client, world, role):
    client.force_login(world.user(role))

    response = client.post(NEW, form_body(target=f"team:{world.team.pk}", limit_usd="5"))

    expected = {"tenant_admin": 302, "platform_admin": 302, "other_tenant_admin": 200}.get(role, 403)
    assert response.status_code == expected
    assert Budget.objects.filter(target_id=world.team.pk).exists() == (expected == 302)


def test_the_list_shows_each_reader_the_budgets_they_may_read(client, world):
    mine = team_budget(world)
    theirs = team_budget(world, team=world.other_team)
    tenant_wide = Budget.objects.create(
        tenant=world.tenant, scope="tenant", target_id=world.tenant.pk, period="daily", limit_tokens=5000
    )
    rival = team_budget(world, team=world.rival_team)

    def listed(role):
        client.force_login(world.user(role))
        return {row["budget"].pk for row in client.get(LIST).context["rows"]}

    assert listed("member") == {mine.pk}
    assert listed("finance") == {mine.pk, theirs.pk, tenant_wide.pk}
    assert listed("tenant_admin") == {mine.pk, theirs.pk, tenant_wide.pk}
    assert listed("other_tenant_admin") == {rival.pk}
    assert listed("platform_admin") == {mine.pk, theirs.pk, tenant_wide.pk, rival.pk}


def test_signed_out_visitors_are_sent_to_sign_in(client, world):
    response = client.get(LIST)

    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_navigation_links_to_the_budgets_page(client, world):
    client.force_login(world.users["finance"])

    assert f'href="{LIST}" data-testid="nav-budgets"' in client.get(reverse("console:home")).content.decode()
