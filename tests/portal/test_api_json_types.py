"""/api/v1 takes JSON types as its schema states them: a string where a string is due, an integer where an
integer is, true or false for a flag. DRF alone took `0` for "0", `"60"` or `60.0` for 60 and `"yes"` for true."""

import pytest

from portal.models import Membership, Subscription
from tests.factories import TeamFactory
from tests.portal.factories import MembershipFactory, SubscriptionFactory, UserFactory, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def team():
    return TeamFactory()


@pytest.fixture
def admin(team):
    return token_client(MembershipFactory(team=None, tenant=team.tenant, role=Membership.Role.TENANT_ADMIN).user)


@pytest.mark.parametrize("reason", [0, 1.5, True, ["why"], {"why": "because"}])
def test_a_reason_that_is_not_a_string_is_refused_and_nothing_is_decided(team, admin, reason):
    subscription = SubscriptionFactory(team=team, status=Subscription.Status.PENDING)

    response = admin.post(f"/api/v1/subscriptions/{subscription.pk}/approve", {"reason": reason}, format="json")

    assert response.status_code == 400, response.content
    assert list(response.json()) == ["reason"]
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.PENDING


@pytest.mark.parametrize("limit", ["60", 60.0, True])
def test_a_limit_that_is_not_an_integer_is_refused(team, admin, limit):
    response = admin.patch(f"/api/v1/teams/{team.pk}", {"rpm_limit": limit}, format="json")

    assert response.status_code == 400, response.content
    assert list(response.json()) == ["rpm_limit"]


def test_a_flag_that_is_not_a_boolean_is_refused(team, admin):
    response = admin.post("/api/v1/products/", {"name": "Mini", "requires_approval": "yes"}, format="json")

    assert response.status_code == 400, response.content
    assert list(response.json()) == ["requires_approval"]


def test_an_id_sent_as_a_string_is_refused(team, admin):
    response = admin.post("/api/v1/teams/", {"tenant": str(team.tenant.pk), "name": "Payments"}, format="json")

    assert response.status_code == 400, response.content
    assert list(response.json()) == ["tenant"]


def test_a_password_that_is_not_a_string_is_refused():
    user = UserFactory()

    response = token_client().post("/api/v1/auth/token", {"email": user.email, "password": 12345678}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["password"]


def test_null_where_null_is_allowed_still_clears_a_limit(team, admin):
    admin.patch(f"/api/v1/teams/{team.pk}", {"rpm_limit": 60}, format="json")

    response = admin.patch(f"/api/v1/teams/{team.pk}", {"rpm_limit": None}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["rpm_limit"] is None
