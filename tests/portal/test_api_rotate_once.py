"""A key is rotated once: rotating it again answers 409 (its successor is the one to rotate), where the unique
`rotated_from` used to fail as a 500."""

import pytest

from portal.models import APIKey, Membership
from tests.factories import TeamFactory
from tests.portal.factories import MembershipFactory, token_client

pytestmark = pytest.mark.django_db


def test_rotating_a_rotated_key_answers_409_and_its_successor_can_be_rotated():
    team = TeamFactory()
    owner = token_client(MembershipFactory(team=team, role=Membership.Role.TEAM_OWNER).user)
    first = owner.post("/api/v1/keys/", {"team": team.pk, "name": "ci"}, format="json").json()
    second = owner.post(f"/api/v1/keys/{first['id']}/rotate", {}, format="json").json()

    again = owner.post(f"/api/v1/keys/{first['id']}/rotate", {}, format="json")
    third = owner.post(f"/api/v1/keys/{second['id']}/rotate", {}, format="json")

    assert again.status_code == 409, again.content
    assert again.json()["code"] == "invalid_transition"
    assert third.status_code == 201, third.content
    assert APIKey.objects.count() == 3
