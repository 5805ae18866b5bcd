"""/api/v1/budgets/: who may set and read budgets, validation, and the current period's spend on read."""

from decimal import Decimal

import pytest

from billing import budgets
from billing.models import Budget, BudgetCounter
from portal.models import AuditLogEntry, Membership
from tests.billing.factories import UsageRecordFactory
from tests.factories import TeamFactory
from tests.portal.factories import MembershipFactory, token_client

pytestmark = pytest.mark.django_db

BODY = {"scope": "team", "period": "monthly", "limit_usd": "25.50", "thresholds": [80, 50, 100], "action": "block"}


@pytest.fixture
def team():
    return TeamFactory(name="Checkout")


def member(team, role, *, tenant_wide=False):
    return MembershipFactory(tenant=team.tenant, team=None if tenant_wide else team, role=role).user


def test_a_tenant_admin_sets_a_team_budget_and_reads_its_spend(team):
    admin = member(team, Membership.Role.TENANT_ADMIN, tenant_wide=True)

    created = token_client(admin).post("/api/v1/budgets/", {**BODY, "target": team.pk}, format="json")

    assert created.status_code == 201, created.content
    budget = Budget.objects.get()
    assert (budget.tenant, budget.scope, budget.target_id, budget.limit_usd) == (
        team.tenant,
        "team",
        team.pk,
        Decimal("25.5"),
    )
    assert created.json()["thresholds"] == [50, 80, 100]
    assert AuditLogEntry.objects.filter(action="budget.created", target_id=str(budget.pk)).exists()
    start, _ = budgets.current_period(budget)
    UsageRecordFactory(tenant=team.tenant, team=team, created_at=start, cost_usd=Decimal("3.25"))
    if budgets.current_spend(budget)["source"] == "database":
        # Spent comes from the usage records; the counter's settled figure is the ledger's, its reservations
        # are what is shown as in flight.
        BudgetCounter.objects.create(
            budget=budget, period_start=start, spent_usd=Decimal("9.99"), reserved_usd=Decimal("0.047")
        )
        read = token_client(admin).get(f"/api/v1/budgets/{budget.pk}").json()
        assert (read["spent_usd"], read["reserved_usd"]) == ("3.2500000000", "0.0470000000")
    read = token_client(admin).get(f"/api/v1/budgets/{budget.pk}").json()
    assert {"spent_usd", "reserved_usd", "period_start", "period_end", "target"} <= set(read)
    assert read["target"] == team.pk and read["limit_usd"] == "25.5000000000"


@pytest.mark.parametrize(
    "change, field",
    [
        ({"limit_usd": None, "limit_tokens": None}, "limit_usd"),
        ({"limit_usd": "0"}, "limit_usd"),
        ({"action": "downgrade"}, "downgrade_alias"),
        ({"action": "downgrade", "downgrade_alias": "no-such-alias"}, "downgrade_alias"),
        ({"thresholds": [0]}, "thresholds"),
        ({"scope": "galaxy"}, "scope"),
        ({"period": "weekly"}, "period"),
    ],
)
def test_bad_budgets_are_refused_next_to_their_field(team, change, field):
    admin = member(team, Membership.Role.TENANT_ADMIN, tenant_wide=True)

    response = token_client(admin).post("/api/v1/budgets/", {**BODY, "target": team.pk, **change}, format="json")

    assert response.status_code == 400 and field in response.json(), response.content
    assert not Budget.objects.exists()


def test_finance_reads_budgets_but_cannot_set_them(team):
    finance = member(team, Membership.Role.FINANCE, tenant_wide=True)
    Budget.objects.create(tenant=team.tenant, scope="team", target_id=team.pk, period="daily", limit_usd=1)

    assert len(token_client(finance).get("/api/v1/budgets/").json()["results"]) == 1
    refused = token_client(finance).post("/api/v1/budgets/", {**BODY, "target": team.pk}, format="json")
    assert refused.status_code == 403 and Budget.objects.count() == 1


def test_a_team_member_sees_its_team_budget_only(team):
    colleague_team = TeamFactory(tenant=team.tenant)
    mine = Budget.objects.create(tenant=team.tenant, scope="team", target_id=team.pk, period="daily", limit_usd=1)
    Budget.objects.create(tenant=team.tenant, scope="team", target_id=colleague_team.pk, period="daily", limit_usd=1)
    user = member(team, Membership.Role.MEMBER)

    listed = token_client(user).get("/api/v1/budgets/").json()["results"]

    assert [b["id"] for b in listed] == [mine.pk]


def test_another_tenants_budgets_and_targets_are_not_there(team):
    other = TeamFactory()
    theirs = Budget.objects.create(tenant=other.tenant, scope="team", target_id=other.pk, period="daily", limit_usd=1)
    admin = member(team, Membership.Role.TENANT_ADMIN, tenant_wide=True)
    client = token_client(admin)

    assert client.get(f"/api/v1/budgets/{theirs.pk}").status_code == 404
    assert client.patch(f"/api/v1/budgets/{theirs.pk}", {"limit_usd": "999"}, format="json").status_code == 404
    aimed = client.post("/api/v1/budgets/", {**BODY, "target": other.pk}, format="json")
    assert aimed.status_code == 400 and aimed.json()["target"] == [f"there is no team {other.pk}"]
    theirs.refresh_from_db()
    assert theirs.limit_usd == 1 and Budget.objects.count() == 1


def test_a_tenant_admin_changes_a_budget(team):
    admin = member(team, Membership.Role.TENANT_ADMIN, tenant_wide=True)
    budget = Budget.objects.create(tenant=team.tenant, scope="team", target_id=team.pk, period="daily", limit_usd=1)

    changed = token_client(admin).patch(f"/api/v1/budgets/{budget.pk}", {"limit_usd": "2.5"}, format="json")

    assert changed.status_code == 200, changed.content
    budget.refresh_from_db()
    assert budget.limit_usd == Decimal("2.5")
