"""Requesting subscriptions through /api/v1: pending until an admin decides, unless the product needs no
approval; one open request per team and product."""

import pytest

from portal.models import AuditLogEntry, Membership, Notification, Subscription
from tests.factories import TeamFactory
from tests.portal.factories import MembershipFactory, ProductFactory, SubscriptionFactory, token_client

pytestmark = pytest.mark.django_db
Status = Subscription.Status


@pytest.fixture
def team():
    return TeamFactory()


@pytest.fixture
def owner(team):
    return MembershipFactory(team=team, role=Membership.Role.TEAM_OWNER).user


def request_subscription(user, **body):
    return token_client(user).post("/api/v1/subscriptions/", body, format="json")


def test_a_request_is_pending_and_the_tenant_admins_are_told(team, owner):
    admin = MembershipFactory(team=None, tenant=team.tenant, role=Membership.Role.TENANT_ADMIN).user
    product = ProductFactory(requires_approval=True)

    response = request_subscription(
        owner, team=team.pk, product=product.pk, purpose="checkout bot", expected_volume="1k/day"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["requested_by"], body["expected_volume"]) == (Status.PENDING, owner.email, "1k/day")
    assert AuditLogEntry.objects.filter(action="subscription.requested", actor=owner).exists()
    assert Notification.objects.filter(user=admin, subject__contains=product.name).exists()


def test_a_product_without_approval_is_active_at_once(team, owner):
    product = ProductFactory(requires_approval=False)

    response = request_subscription(owner, team=team.pk, product=product.pk, purpose="checkout bot")

    assert response.status_code == 201
    assert response.json()["status"] == Status.ACTIVE
    assert Subscription.objects.get().status == Status.ACTIVE


def test_a_second_open_request_for_the_same_product_is_refused(team, owner):
    existing = SubscriptionFactory(team=team, status=Status.ACTIVE)

    response = request_subscription(owner, team=team.pk, product=existing.product_id, purpose="again")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert Subscription.objects.count() == 1


def test_another_tenants_product_is_refused_like_one_that_does_not_exist(team, owner):
    foreign = ProductFactory(tenant=TeamFactory().tenant)

    response = request_subscription(owner, team=team.pk, product=foreign.pk, purpose="bot")
    missing = request_subscription(owner, team=team.pk, product=foreign.pk + 1000, purpose="bot")

    assert response.status_code == missing.status_code == 400
    assert response.json()["product"][0].replace(str(foreign.pk), "N") == missing.json()["product"][0].replace(
        str(foreign.pk + 1000), "N"
    )
    assert not Subscription.objects.exists()


def test_a_request_must_say_what_it_is_for(team, owner):
    response = request_subscription(owner, team=team.pk, product=ProductFactory().pk, purpose="  ")

    assert response.status_code == 400
    assert not Subscription.objects.exists()


def test_the_list_filters_by_status(team, owner):
    pending = SubscriptionFactory(team=team, status=Status.PENDING)
    SubscriptionFactory(team=team, status=Status.ACTIVE)

    response = token_client(owner).get("/api/v1/subscriptions/?status=pending")

    assert [row["id"] for row in response.json()["results"]] == [pending.pk]


def test_a_filter_that_is_not_a_number_is_a_bad_request(owner):
    response = token_client(owner).get("/api/v1/subscriptions/?team=abc")

    assert response.status_code == 400
    assert response.json() == {"team": ["must be a whole number from 1 to 9223372036854775807"]}
