"""Deciding on subscriptions through the API: every allowed move, every refused one, and who may make them."""

import pytest

from portal.models import AuditLogEntry, Membership, Notification, Subscription
from tests.factories import TeamFactory
from tests.portal.factories import MembershipFactory, SubscriptionFactory, UserFactory, token_client

pytestmark = pytest.mark.django_db
Status = Subscription.Status


@pytest.fixture
def team():
    return TeamFactory(tenant__name="Acme")


@pytest.fixture
def owner(team):
    return MembershipFactory(team=team, role=Membership.Role.TEAM_OWNER).user


@pytest.fixture
def admin(team):
    return MembershipFactory(team=None, tenant=team.tenant, role=Membership.Role.TENANT_ADMIN).user


def decide(user, subscription, action: str, *, reason: str = "", slash: str = ""):
    body = {"reason": reason} if reason else {}
    return token_client(user).post(f"/api/v1/subscriptions/{subscription.pk}/{action}{slash}", body, format="json")


@pytest.mark.parametrize(
    ("start", "action", "end", "verb"),
    [
        (Status.PENDING, "approve", Status.ACTIVE, "approved"),
        (Status.PENDING, "reject", Status.REJECTED, "rejected"),
        (Status.ACTIVE, "suspend", Status.SUSPENDED, "suspended"),
        (Status.SUSPENDED, "resume", Status.ACTIVE, "resumed"),
    ],
)
def test_an_allowed_decision_moves_the_subscription_audits_it_and_tells_the_team(
    team, owner, admin, start, action, end, verb
):
    subscription = SubscriptionFactory(team=team, status=start)

    response = decide(admin, subscription, action, reason="checked with finance")

    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["reason"]) == (end, "checked with finance")
    subscription.refresh_from_db()
    assert (subscription.status, subscription.decided_by) == (end, admin)
    entry = AuditLogEntry.objects.get(action=f"subscription.{verb}", target_id=str(subscription.pk))
    assert (entry.actor, entry.tenant, entry.reason) == (admin, team.tenant, "checked with finance")
    assert Notification.objects.filter(user=owner, subject__contains=verb).exists()


@pytest.mark.parametrize(
    ("start", "action"),
    [
        (Status.PENDING, "suspend"),
        (Status.PENDING, "resume"),
        (Status.ACTIVE, "approve"),
        (Status.ACTIVE, "reject"),
        (Status.ACTIVE, "resume"),
        (Status.REJECTED, "approve"),
        (Status.REJECTED, "suspend"),
        (Status.REJECTED, "resume"),
        (Status.SUSPENDED, "approve"),
        (Status.SUSPENDED, "suspend"),
    ],
)
def test_a_decision_the_status_does_not_allow_answers_409_and_changes_nothing(team, admin, start, action):
    subscription = SubscriptionFactory(team=team, status=start)

    response = decide(admin, subscription, action)

    assert response.status_code == 409
    assert response.json()["code"] == "invalid_transition"
    assert response.json()["detail"].startswith(f"a {start} subscription cannot be")
    subscription.refresh_from_db()
    assert subscription.status == start
    assert not AuditLogEntry.objects.filter(target_type="subscription").exists()


@pytest.mark.parametrize("action", ["approve", "reject"])
def test_a_team_owner_cannot_decide_on_their_own_request(team, owner, action):
    subscription = SubscriptionFactory(team=team, status=Status.PENDING)

    response = decide(owner, subscription, action)

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    subscription.refresh_from_db()
    assert subscription.status == Status.PENDING


def test_an_admin_of_another_tenant_is_told_the_subscription_does_not_exist(team):
    subscription = SubscriptionFactory(team=team, status=Status.PENDING)
    stranger = MembershipFactory(team=None, role=Membership.Role.TENANT_ADMIN).user

    response = decide(stranger, subscription, "approve")

    assert response.status_code == 404
    subscription.refresh_from_db()
    assert subscription.status == Status.PENDING


def test_a_platform_admin_decides_for_any_tenant(team):
    subscription = SubscriptionFactory(team=team, status=Status.PENDING)
    platform_admin = UserFactory(is_superuser=True)

    response = decide(platform_admin, subscription, "approve")

    assert response.status_code == 200
    assert response.json()["decided_by"] == platform_admin.email


@pytest.mark.parametrize("slash", ["", "/"])
def test_an_action_answers_with_or_without_the_trailing_slash(team, admin, slash):
    subscription = SubscriptionFactory(team=team, status=Status.PENDING)

    response = decide(admin, subscription, "approve", slash=slash)

    assert response.status_code == 200
    assert response.json()["status"] == Status.ACTIVE
