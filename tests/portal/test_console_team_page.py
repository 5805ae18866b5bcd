import pytest
from django.core import mail
from django.urls import reverse

from portal import services
from portal.models import APIKey, AuditLogEntry, Invitation, Membership
from tests.factories import TeamFactory
from tests.portal.factories import MembershipFactory, UserFactory
from tests.portal.test_console_world import build_world


@pytest.fixture
def world(db):
    return build_world()


def team_url(world):
    return reverse("console:team", args=[world.team.pk])


def test_the_team_page_lists_members_subscriptions_with_status_and_keys_by_prefix_only(client, world):
    client.force_login(world.users["team_owner"])

    page = client.get(team_url(world)).content.decode()

    assert "member@acme.test" in page and "owner@acme.test" in page
    assert "Chat" in page and "Pending approval" in page
    assert "Embeddings" in page and ">Active<" in page
    assert f'data-testid="key-row-{world.key.prefix}"' in page
    assert f'data-testid="revoke-{world.key.pk}"' in page
    assert world.key.secret_hash not in page
    assert 'name="grace_s"' in page  # rotation offers a grace period


def test_a_member_sees_the_team_but_no_buttons_that_change_it(client, world):
    client.force_login(world.users["member"])

    page = client.get(team_url(world)).content.decode()

    assert f'data-testid="key-row-{world.key.prefix}"' in page
    assert f'data-testid="revoke-{world.key.pk}"' not in page
    assert 'data-testid="invite-form"' not in page
    assert reverse("console:key-new", args=[world.team.pk]) not in page


@pytest.mark.django_db
def test_an_empty_team_shows_empty_states_that_say_what_to_do(client):
    owner = MembershipFactory(team=TeamFactory(), role=Membership.Role.TEAM_OWNER).user
    client.force_login(owner)

    page = client.get(reverse("console:team", args=[owner.memberships.get().team_id])).content.decode()

    assert "No keys yet" in page and "Create the first key" in page
    assert "No subscriptions yet" in page and reverse("console:catalogue") in page


def test_long_key_lists_are_paginated(client, world):
    for n in range(25):
        services.issue_api_key(team=world.team, name=f"bulk {n}", source=APIKey.Source.PORTAL)
    client.force_login(world.users["team_owner"])

    first = client.get(team_url(world)).content.decode()
    second = client.get(team_url(world), {"keys": 2}).content.decode()

    assert first.count('data-testid="key-row-') == 20 and "Page 1 of 2" in first
    assert second.count('data-testid="key-row-') == 6 and "Page 2 of 2" in second
    assert "?keys=2#keys" in first


def test_inviting_by_email_sends_the_acceptance_link_and_is_audited(client, world, django_capture_on_commit_callbacks):
    client.force_login(world.users["team_owner"])

    with django_capture_on_commit_callbacks(execute=True):  # the email leaves only once the invitation is saved
        response = client.post(
            reverse("console:team-invite", args=[world.team.pk]),
            {"email": "New.Person@Acme.test", "role": "team_owner"},
        )

    invitation = Invitation.objects.get()
    assert response.status_code == 302
    assert (invitation.email, invitation.role) == ("new.person@acme.test", "team_owner")
    assert mail.outbox[-1].to == ["new.person@acme.test"]
    assert f"http://testserver/console/invitations/{invitation.token}/" in mail.outbox[-1].body
    assert AuditLogEntry.objects.filter(action="team.member_invited", target_id=str(world.team.pk)).exists()
    assert "new.person@acme.test" in client.get(team_url(world)).content.decode()  # waiting invitations


@pytest.mark.parametrize(
    ("email", "error"),
    [("not-an-address", "Enter a valid email address."), ("member@acme.test", "That person is already in the team.")],
)
def test_a_bad_invitation_is_refused_beside_the_email_field(
    client, world, email, error, django_capture_on_commit_callbacks
):
    client.force_login(world.users["team_owner"])

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("console:team-invite", args=[world.team.pk]), {"email": email, "role": "member"})

    assert response.status_code == 200
    assert response.context["invite_form"].errors == {"email": [error]}
    page = response.content.decode()
    assert page.index('id="field-email"') < page.index(error.replace("'", "&#x27;"))
    assert not Invitation.objects.exists() and not mail.outbox


def test_the_invitee_accepts_and_joins_the_team_with_the_invited_role(client, world):
    invitation = services.invite_member(
        team=world.team, email="joiner@acme.test", role="member", invited_by=world.users["team_owner"]
    )
    joiner = UserFactory(email="joiner@acme.test")
    client.force_login(joiner)
    url = reverse("console:invitation", args=[invitation.token])
    assert "Join Checkout" in client.get(url).content.decode()

    response = client.post(url)

    assert response.status_code == 302 and response.headers["location"] == team_url(world)
    assert Membership.objects.filter(user=joiner, team=world.team, role="member").exists()
    assert AuditLogEntry.objects.filter(action="team.member_joined", actor=joiner).exists()


def test_an_invitation_for_another_address_cannot_be_accepted(client, world):
    invitation = services.invite_member(
        team=world.team, email="joiner@acme.test", role="member", invited_by=world.users["team_owner"]
    )
    client.force_login(UserFactory(email="intruder@evil.test"))

    response = client.post(reverse("console:invitation", args=[invitation.token]))

    assert response.status_code == 200
    assert "This invitation is for joiner@acme.test" in response.content.decode()
    assert not Membership.objects.filter(user__email="intruder@evil.test").exists()


@pytest.mark.django_db
def test_an_unknown_invitation_token_is_not_found(client):
    client.force_login(UserFactory())

    assert client.get(reverse("console:invitation", args=["no-such-token"])).status_code == 404
