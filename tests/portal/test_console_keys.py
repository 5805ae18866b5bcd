"""Portal keys from the console: the secret is shown once, in the answer to the POST that made it."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from portal.keys import hash_key
from portal.models import APIKey, AuditLogEntry, Subscription
from tests.portal.factories import SubscriptionFactory
from tests.portal.test_console_world import build_world


@pytest.fixture
def world(db):
    return build_world()


def new_key_url(world):
    return reverse("console:key-new", args=[world.team.pk])


def secret_of(response) -> str:
    return response.context["secret"]


def test_the_form_offers_only_the_teams_active_subscriptions(client, world):
    SubscriptionFactory(team=world.other_team, status=Subscription.Status.ACTIVE)
    client.force_login(world.users["team_owner"])

    response = client.get(new_key_url(world))

    assert 'data-testid="new-key-form"' in response.content.decode()
    assert list(response.context["form"].fields["subscriptions"].queryset) == [world.active]


def test_creating_a_key_shows_the_secret_once_and_stores_only_its_hash(client, world):
    owner = world.users["team_owner"]
    client.force_login(owner)

    response = client.post(new_key_url(world), {"name": "checkout staging", "subscriptions": [world.active.pk]})

    secret = secret_of(response)
    key = APIKey.objects.get(name="checkout staging")
    page = response.content.decode()
    assert response.status_code == 200
    assert f'<code id="new-key-secret" data-testid="new-key-secret">{secret}</code>' in page
    assert 'data-testid="copy-key-button"' in page
    assert "no-store" in response.headers["cache-control"]
    assert (key.source, key.created_by, key.team) == (APIKey.Source.PORTAL, owner, world.team)
    assert list(key.subscriptions.all()) == [world.active]
    assert key.secret_hash == hash_key(secret, pepper=settings.TOLLWAY_KEY_PEPPER)
    assert AuditLogEntry.objects.filter(action="api_key.created", target_id=str(key.pk), actor=owner).exists()

    team_page = client.get(reverse("console:team", args=[world.team.pk])).content.decode()
    assert secret not in team_page
    assert f'data-testid="key-row-{key.prefix}"' in team_page


def test_an_expiry_choice_sets_the_keys_expiry(client, world):
    client.force_login(world.users["team_owner"])

    client.post(new_key_url(world), {"name": "temp", "expires_in_days": "7"})

    expires_at = APIKey.objects.get(name="temp").expires_at
    assert timedelta(days=6, hours=23) < expires_at - timezone.now() <= timedelta(days=7)


def test_per_key_limits_are_kept_on_the_key(client, world):
    client.force_login(world.users["team_owner"])

    client.post(new_key_url(world), {"name": "limited", "rpm_limit": "60", "tpm_limit": "40000"})

    key = APIKey.objects.get(name="limited")
    assert (key.rpm_limit, key.tpm_limit) == (60, 40000)


@pytest.mark.parametrize(
    ("data", "field", "error"),
    [
        ({"name": ""}, "name", "This field is required."),
        ({"name": "x", "expires_in_days": "3"}, "expires_in_days", "Select a valid choice. 3 is not one of"),
        ({"name": "x", "subscriptions": ["999999"]}, "subscriptions", "Select a valid choice. 999999 is not one of"),
        ({"name": "x", "rpm_limit": "0"}, "rpm_limit", "Ensure this value is greater than or equal to 1."),
    ],
)
def test_bad_input_is_reported_beside_its_field_and_makes_no_key(client, world, data, field, error):
    client.force_login(world.users["team_owner"])
    keys_before = APIKey.objects.count()

    response = client.post(new_key_url(world), data)

    assert response.status_code == 200
    assert list(response.context["form"].errors) == [field]
    page = response.content.decode()
    # The error sits inside the field's own block, between its input and the next field.
    field_html = page[page.index(f'id="field-{field}"') :].split('id="field-')[1]
    assert f'<p class="field-error" id="id_{field}_error" role="alert">{error}' in field_html
    assert APIKey.objects.count() == keys_before


def test_another_teams_subscription_cannot_be_slipped_into_a_key(client, world):
    foreign = SubscriptionFactory(team=world.other_team, status=Subscription.Status.ACTIVE)
    client.force_login(world.users["tenant_admin"])

    response = client.post(new_key_url(world), {"name": "x", "subscriptions": [foreign.pk]})

    assert "subscriptions" in response.context["form"].errors
    assert not APIKey.objects.filter(name="x").exists()


def test_revoking_a_key_is_audited_and_the_key_stays_listed_as_revoked(client, world):
    admin = world.users["tenant_admin"]
    client.force_login(admin)

    response = client.post(reverse("console:key-revoke", args=[world.key.pk]))

    world.key.refresh_from_db()
    assert response.status_code == 302
    assert response.headers["location"] == reverse("console:team", args=[world.team.pk]) + "#keys"
    assert world.key.is_revoked
    assert AuditLogEntry.objects.filter(action="api_key.revoked", target_id=str(world.key.pk), actor=admin).exists()
    page = client.get(response.headers["location"]).content.decode()
    assert "revoked" in page and f'data-testid="revoke-{world.key.pk}"' not in page


def test_revoking_twice_changes_nothing_the_second_time(client, world):
    client.force_login(world.users["team_owner"])
    client.post(reverse("console:key-revoke", args=[world.key.pk]))

    client.post(reverse("console:key-revoke", args=[world.key.pk]))

    assert AuditLogEntry.objects.filter(action="api_key.revoked").count() == 1


def test_rotating_shows_the_new_secret_once_and_keeps_the_old_key_for_the_grace_period(client, world):
    owner = world.users["team_owner"]
    client.force_login(owner)

    response = client.post(reverse("console:key-rotate", args=[world.key.pk]), {"grace_s": "3600"})

    new_key = APIKey.objects.get(rotated_from=world.key)
    world.key.refresh_from_db()
    assert response.status_code == 200
    assert secret_of(response).startswith(new_key.prefix)
    assert f'data-testid="new-key-secret">{secret_of(response)}<' in response.content.decode()
    assert timedelta(minutes=59) < world.key.expires_at - timezone.now() <= timedelta(hours=1)
    assert not world.key.is_revoked
    assert AuditLogEntry.objects.filter(action="api_key.rotated", target_id=str(world.key.pk), actor=owner).exists()


def test_a_grace_period_off_the_list_is_refused(client, world):
    client.force_login(world.users["team_owner"])

    response = client.post(reverse("console:key-rotate", args=[world.key.pk]), {"grace_s": str(90 * 24 * 3600)})

    assert response.status_code == 302
    assert not APIKey.objects.filter(rotated_from=world.key).exists()


def test_a_team_without_active_subscriptions_is_warned_that_its_key_can_call_nothing_yet(client, world):
    world.active.status = Subscription.Status.SUSPENDED
    world.active.save()
    client.force_login(world.users["team_owner"])

    page = client.get(new_key_url(world)).content.decode()

    assert "no active subscription yet" in page


def test_rotating_a_key_that_was_rotated_already_says_so_and_makes_no_second_successor(client, world):
    client.force_login(world.users["team_owner"])
    client.post(reverse("console:key-rotate", args=[world.key.pk]), {"grace_s": "3600"})

    again = client.post(reverse("console:key-rotate", args=[world.key.pk]), {"grace_s": "3600"}, follow=True)

    assert again.status_code == 200
    assert "rotated already" in again.content.decode()
    assert APIKey.objects.filter(rotated_from=world.key).count() == 1
