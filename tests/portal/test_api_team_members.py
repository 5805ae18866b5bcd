"""Team members through /api/v1: owners invite, the invitee accepts with the token, members are listed."""

import pytest

from portal.models import Invitation, Membership
from tests.factories import TeamFactory
from tests.portal.factories import MembershipFactory, UserFactory, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def team():
    return TeamFactory()


@pytest.fixture
def owner(team):
    return MembershipFactory(team=team, role=Membership.Role.TEAM_OWNER, user__email="owner@acme.test").user


def invite(owner, team, **body):
    return token_client(owner).post(f"/api/v1/teams/{team.pk}/members", body, format="json")


def test_an_invitee_joins_with_the_token_shown_once_to_the_inviter(team, owner):
    invited = invite(owner, team, email="New@Acme.test", role="team_owner")
    listed = token_client(owner).get(f"/api/v1/teams/{team.pk}/members/invitations")
    joiner = UserFactory(email="new@acme.test")

    joined = token_client(joiner).post("/api/v1/invitations/accept", {"token": invited.json()["token"]}, format="json")
    members = token_client(owner).get(f"/api/v1/teams/{team.pk}/members/").json()["results"]

    assert invited.status_code == 201, invited.content
    assert invited.json()["token"] == Invitation.objects.get().token
    assert listed.status_code == 200 and "token" not in listed.json()["results"][0]
    assert joined.status_code == 200, joined.content
    assert {(m["email"], m["role"]) for m in members} == {
        ("owner@acme.test", "team_owner"),
        (joiner.email, "team_owner"),
    }


def test_an_invitation_cannot_make_a_tenant_admin(team, owner):
    response = invite(owner, team, email="new@acme.test", role="tenant_admin")

    assert response.status_code == 400
    assert not Invitation.objects.exists()


def test_an_invitation_for_someone_else_cannot_be_accepted(team, owner):
    token = invite(owner, team, email="new@acme.test").json()["token"]

    response = token_client(UserFactory(email="other@acme.test")).post(
        "/api/v1/invitations/accept", {"token": token}, format="json"
    )

    assert response.status_code == 400
    assert Membership.objects.filter(team=team).count() == 1


def test_an_unknown_invitation_token_is_not_found():
    response = token_client(UserFactory()).post("/api/v1/invitations/accept", {"token": "made-up"}, format="json")

    assert response.status_code == 404
