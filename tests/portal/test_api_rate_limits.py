"""Team and subscription RPM/TPM through /api/v1: `PATCH teams/{id}` and `subscriptions/{id}` by the tenant's
admins, audited, `null` clearing an override. That the gateway enforces them is in tests/billing/test_rate_limits.py;
who may is in the authorisation matrix."""

import pytest

from portal.models import AuditLogEntry, Membership, Subscription, Team
from tests.factories import TeamFactory
from tests.portal.factories import MembershipFactory, ProductFactory, SubscriptionFactory, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def team():
    return TeamFactory()


@pytest.fixture
def admin(team):
    return token_client(MembershipFactory(team=None, tenant=team.tenant, role=Membership.Role.TENANT_ADMIN).user)


def test_a_team_limit_is_set_shown_audited_and_cleared(team, admin):
    set_both = admin.patch(f"/api/v1/teams/{team.pk}", {"rpm_limit": 600, "tpm_limit": 100_000}, format="json")
    only_rpm = admin.patch(f"/api/v1/teams/{team.pk}/", {"rpm_limit": None}, format="json")
    shown = admin.get(f"/api/v1/teams/{team.pk}")

    assert set_both.status_code == 200, set_both.content
    assert (set_both.json()["rpm_limit"], set_both.json()["tpm_limit"]) == (600, 100_000)
    assert (only_rpm.json()["rpm_limit"], only_rpm.json()["tpm_limit"]) == (None, 100_000)
    assert (shown.json()["rpm_limit"], shown.json()["tpm_limit"]) == (None, 100_000)
    assert Team.objects.values_list("rpm_limit", "tpm_limit").get(pk=team.pk) == (None, 100_000)
    entries = AuditLogEntry.objects.filter(action="team.limits_changed").order_by("pk")
    assert [e.details for e in entries] == [
        {"before": {"rpm_limit": None, "tpm_limit": None}, "after": {"rpm_limit": 600, "tpm_limit": 100_000}},
        {"before": {"rpm_limit": 600}, "after": {"rpm_limit": None}},
    ]
    assert {e.target_id for e in entries} == {str(team.pk)}


def test_a_subscription_override_replaces_its_products_default_until_cleared(team, admin):
    product = ProductFactory(tenant=team.tenant, default_rpm=60)
    subscription = SubscriptionFactory(team=team, product=product, status=Subscription.Status.ACTIVE)

    overridden = admin.patch(f"/api/v1/subscriptions/{subscription.pk}", {"rpm_limit": 5}, format="json")
    cleared = admin.patch(f"/api/v1/subscriptions/{subscription.pk}", {"rpm_limit": None}, format="json")

    assert (overridden.status_code, overridden.json()["rpm_limit"]) == (200, 5)
    assert (cleared.status_code, cleared.json()["rpm_limit"]) == (200, None)
    assert AuditLogEntry.objects.filter(action="subscription.limits_changed").count() == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rpm_limit": 0}, "rpm_limit"),
        ({"tpm_limit": -5}, "tpm_limit"),
        ({"rpm_limit": "many"}, "rpm_limit"),
        ({"rpm_limit": 2**31}, "rpm_limit"),
        ({"name": "renamed", "rpm_limit": 10}, "name"),
        ({}, "non_field_errors"),
    ],
)
def test_bad_limits_are_refused_and_change_nothing(team, admin, body, field):
    Team.objects.filter(pk=team.pk).update(rpm_limit=7)

    answer = admin.patch(f"/api/v1/teams/{team.pk}", body, format="json")

    assert answer.status_code == 400
    assert field in str(answer.json()), answer.json()
    assert Team.objects.values_list("name", "rpm_limit").get(pk=team.pk) == (team.name, 7)
    assert not AuditLogEntry.objects.filter(action="team.limits_changed").exists()


def test_a_team_owner_cannot_raise_their_own_limit(team):
    owner = token_client(MembershipFactory(team=team, role=Membership.Role.TEAM_OWNER).user)
    Team.objects.filter(pk=team.pk).update(rpm_limit=10)

    answer = owner.patch(f"/api/v1/teams/{team.pk}", {"rpm_limit": 10_000}, format="json")

    assert answer.status_code == 403
    assert Team.objects.get(pk=team.pk).rpm_limit == 10
