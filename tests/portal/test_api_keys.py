"""API keys through /api/v1: portal keys, their secret shown once, listing by prefix, rotation and revocation."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from portal.keys import hash_key
from portal.models import APIKey, AuditLogEntry, Membership, Subscription
from tests.factories import TeamFactory
from tests.portal.factories import MembershipFactory, SubscriptionFactory, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def team():
    return TeamFactory()


@pytest.fixture
def owner(team):
    return MembershipFactory(team=team, role=Membership.Role.TEAM_OWNER).user


def create_key(user, **body):
    return token_client(user).post("/api/v1/keys/", body, format="json")


def test_a_created_key_is_a_portal_key_whose_secret_appears_once(team, owner):
    subscription = SubscriptionFactory(team=team, status=Subscription.Status.ACTIVE)

    created = create_key(owner, team=team.pk, name="deploy", subscriptions=[subscription.pk], rpm_limit=60)
    listed = token_client(owner).get("/api/v1/keys/")
    fetched = token_client(owner).get(f"/api/v1/keys/{created.json()['id']}")

    assert created.status_code == 201, created.content
    secret = created.json()["secret"]
    api_key = APIKey.objects.get()
    assert api_key.secret_hash == hash_key(secret, pepper=settings.TOLLWAY_KEY_PEPPER)
    assert (api_key.source, api_key.created_by, api_key.rpm_limit) == (APIKey.Source.PORTAL, owner, 60)
    assert list(api_key.subscriptions.all()) == [subscription]
    assert created.json()["prefix"] == api_key.prefix and secret.startswith(api_key.prefix)
    for answer in (listed, fetched):
        assert secret not in answer.content.decode()
        assert api_key.secret_hash not in answer.content.decode()
        assert "secret" not in answer.content.decode()
    assert listed.json()["results"][0]["prefix"] == api_key.prefix


def test_a_key_cannot_be_scoped_to_another_teams_subscription(team):
    admin = MembershipFactory(team=None, tenant=team.tenant, role=Membership.Role.TENANT_ADMIN).user
    neighbours = SubscriptionFactory(team=TeamFactory(tenant=team.tenant))

    response = create_key(admin, team=team.pk, subscriptions=[neighbours.pk])

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert not APIKey.objects.exists()


def test_a_key_cannot_be_scoped_to_a_subscription_of_another_tenant(team, owner):
    foreign = SubscriptionFactory()

    response = create_key(owner, team=team.pk, subscriptions=[foreign.pk])

    assert response.status_code == 400
    assert "subscriptions" in response.json()
    assert not APIKey.objects.exists()


def test_a_key_cannot_expire_in_the_past(team, owner):
    response = create_key(owner, team=team.pk, expires_at=(timezone.now() - timedelta(minutes=1)).isoformat())

    assert response.status_code == 400
    assert response.json() == {"expires_at": ["must be in the future"]}


def test_rotating_returns_a_new_secret_and_lets_the_old_key_live_out_its_grace(team, owner):
    old_id = create_key(owner, team=team.pk, name="deploy").json()["id"]

    before = timezone.now()
    rotated = token_client(owner).post(f"/api/v1/keys/{old_id}/rotate", {"grace_seconds": 600}, format="json")

    assert rotated.status_code == 201, rotated.content
    old, new = APIKey.objects.get(pk=old_id), APIKey.objects.get(pk=rotated.json()["id"])
    assert new.rotated_from == old and new.source == APIKey.Source.PORTAL and new.name == "deploy"
    assert new.secret_hash == hash_key(rotated.json()["secret"], pepper=settings.TOLLWAY_KEY_PEPPER)
    assert before + timedelta(seconds=600) <= old.expires_at <= timezone.now() + timedelta(seconds=600)


def test_a_grace_period_over_thirty_days_is_refused(team, owner):
    key_id = create_key(owner, team=team.pk).json()["id"]

    response = token_client(owner).post(f"/api/v1/keys/{key_id}/rotate/", {"grace_seconds": 31 * 86400}, format="json")

    assert response.status_code == 400
    assert "grace_seconds" in response.json()
    assert APIKey.objects.count() == 1


def test_revoking_records_the_reason_and_a_second_revocation_is_a_conflict(team, owner):
    key_id = create_key(owner, team=team.pk).json()["id"]
    client = token_client(owner)

    first = client.post(f"/api/v1/keys/{key_id}/revoke", {"reason": "leaked in a log"}, format="json")
    second = client.post(f"/api/v1/keys/{key_id}/revoke", format="json")

    assert first.status_code == 200 and first.json()["is_revoked"] is True
    assert AuditLogEntry.objects.get(action="api_key.revoked").reason == "leaked in a log"
    assert second.status_code == 409
    assert AuditLogEntry.objects.filter(action="api_key.revoked").count() == 1


def test_a_revoked_key_cannot_be_rotated(team, owner):
    key_id = create_key(owner, team=team.pk).json()["id"]
    token_client(owner).post(f"/api/v1/keys/{key_id}/revoke")

    response = token_client(owner).post(f"/api/v1/keys/{key_id}/rotate")

    assert response.status_code == 400
    assert response.json() == {"detail": "a revoked key cannot be rotated", "code": "invalid"}
