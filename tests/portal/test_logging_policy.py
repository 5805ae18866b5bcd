"""A team's logging policy (Team.stores_bodies): set by its owners and the tenant's admins through the service,
REST and the console's team page, audited, recorded in the change feed and carried to the gateways' keys."""

import pytest
from django.urls import reverse

from portal import services
from portal.errors import NotAllowed
from portal.models import AuditLogEntry, Membership, Team
from routing.control_plane import loader
from routing.models import ChangeEvent, StoredResponse
from tests.factories import TeamFactory
from tests.portal.factories import MembershipFactory, token_client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tasks_inline")]
Role = Membership.Role


@pytest.fixture
def team():
    return TeamFactory()


@pytest.fixture
def owner(team):
    return MembershipFactory(team=team, role=Role.TEAM_OWNER).user


def stores_bodies(team) -> bool:
    return Team.objects.values_list("stores_bodies", flat=True).get(pk=team.pk)


def stored_response(team, response_id: str) -> StoredResponse:
    return StoredResponse.objects.create(id=response_id, team=team, response={}, input_items=[], messages=[])


# --- The service ----------------------------------------------------------------------------------------------


def test_a_new_team_stores_bodies():
    assert TeamFactory().stores_bodies is True


def test_turning_bodies_off_deletes_the_teams_stored_responses_only_after_the_commit_and_is_audited(
    team, owner, django_capture_on_commit_callbacks
):
    stored_response(team, "resp_mine")
    stored_response(TeamFactory(), "resp_theirs")

    with django_capture_on_commit_callbacks(execute=True) as after_commit:
        services.set_team_logging_policy(team=team, changed_by=owner, stores_bodies=False)
        assert StoredResponse.objects.count() == 2  # not inside the transaction that holds the feed

    assert len(after_commit) == 1 and stores_bodies(team) is False
    assert list(StoredResponse.objects.values_list("id", flat=True)) == ["resp_theirs"]
    entry = AuditLogEntry.objects.get(action="team.logging_policy_changed")
    assert (entry.actor, entry.target_id) == (owner, str(team.pk))
    assert entry.details == {"before": {"stores_bodies": True}, "after": {"stores_bodies": False}}


def test_turning_bodies_back_on_purges_nothing(team, owner, django_capture_on_commit_callbacks):
    services.set_team_logging_policy(team=team, changed_by=owner, stores_bodies=False)
    stored_response(team, "resp_kept")

    with django_capture_on_commit_callbacks(execute=True) as after_commit:
        services.set_team_logging_policy(team=team, changed_by=owner, stores_bodies=True)

    assert after_commit == [] and StoredResponse.objects.filter(id="resp_kept").exists()


def test_setting_the_policy_a_team_has_already_writes_and_audits_nothing(team, owner):
    before = loader.latest_version()

    services.set_team_logging_policy(team=team, changed_by=owner, stores_bodies=True)

    assert loader.latest_version() == before
    assert not AuditLogEntry.objects.filter(action="team.logging_policy_changed").exists()


@pytest.mark.parametrize("role", [Role.MEMBER, Role.FINANCE])
def test_members_and_finance_cannot_change_the_logging_policy(team, role):
    user = MembershipFactory(team=team, role=role).user

    with pytest.raises(NotAllowed):
        services.set_team_logging_policy(team=team, changed_by=user, stores_bodies=False)
    assert stores_bodies(team) is True


@pytest.mark.django_db(transaction=True)
def test_a_policy_change_records_a_team_change_and_the_teams_keys_carry_it(team, owner):
    key = services.issue_api_key(team=team).api_key
    before = loader.latest_version()

    services.set_team_logging_policy(team=team, changed_by=owner, stores_bodies=False)

    changes = ChangeEvent.objects.filter(version__gt=before).values_list("kind", "object_id")
    assert list(changes) == [("team", team.pk)]
    assert team.pk in loader.resolve(loader.read_changes(before, limit=100).changes).team_ids
    assert loader.principals_by_id([key.pk])[key.pk].stores_bodies is False


# --- REST -----------------------------------------------------------------------------------------------------


def test_a_team_owner_patches_the_logging_policy_and_it_is_shown_and_audited(team, owner):
    client = token_client(owner)

    changed = client.patch(f"/api/v1/teams/{team.pk}", {"stores_bodies": False}, format="json")
    shown = client.get(f"/api/v1/teams/{team.pk}").json()

    assert changed.status_code == 200, changed.content
    assert changed.json()["stores_bodies"] is False and shown["stores_bodies"] is False
    assert stores_bodies(team) is False
    assert AuditLogEntry.objects.filter(action="team.logging_policy_changed", actor=owner).count() == 1


@pytest.mark.parametrize("value", ["no", 0, None])
def test_a_policy_that_is_not_a_boolean_is_refused_with_a_400_naming_the_field(team, owner, value):
    answer = token_client(owner).patch(f"/api/v1/teams/{team.pk}", {"stores_bodies": value}, format="json")

    assert answer.status_code == 400
    assert "stores_bodies" in str(answer.json())
    assert stores_bodies(team) is True


def test_a_member_cannot_patch_the_logging_policy(team):
    member = MembershipFactory(team=team, role=Role.MEMBER).user

    answer = token_client(member).patch(f"/api/v1/teams/{team.pk}", {"stores_bodies": False}, format="json")

    assert (answer.status_code, answer.json()["code"]) == (403, "permission_denied")
    assert stores_bodies(team) is True


def test_a_team_owner_cannot_slip_a_rate_limit_in_beside_the_logging_policy(team, owner):
    answer = token_client(owner).patch(
        f"/api/v1/teams/{team.pk}", {"stores_bodies": False, "rpm_limit": 10_000}, format="json"
    )

    assert answer.status_code == 403
    assert Team.objects.values_list("rpm_limit", "stores_bodies").get(pk=team.pk) == (None, True)


# --- The console ----------------------------------------------------------------------------------------------


def team_url(team) -> str:
    return reverse("console:team", args=[team.pk])


def test_the_team_page_shows_the_policy_and_its_owner_turns_bodies_off_and_on(client, team, owner):
    client.force_login(owner)

    first = client.get(team_url(team)).content.decode()
    off = client.post(team_url(team), {"form": "logging"})  # the checkbox unticked
    page_off = client.get(team_url(team)).content.decode()
    client.post(team_url(team), {"form": "logging", "stores_bodies": "on"})

    assert 'data-testid="logging-form"' in first and 'id="id_stores_bodies" checked' in first
    assert off.status_code == 302 and off.url.endswith("#logging")
    assert "Logging policy saved: No bodies are stored" in page_off
    assert 'id="id_stores_bodies" checked' not in page_off and "Not stored" in page_off
    assert stores_bodies(team) is True
    actions = AuditLogEntry.objects.filter(action="team.logging_policy_changed", actor=owner)
    assert [entry.details["after"] for entry in actions.order_by("pk")] == [
        {"stores_bodies": False},
        {"stores_bodies": True},
    ]


def test_a_member_sees_the_policy_without_the_form_and_cannot_post_it(client, team):
    client.force_login(MembershipFactory(team=team, role=Role.MEMBER).user)

    page = client.get(team_url(team)).content.decode()
    posted = client.post(team_url(team), {"form": "logging"})

    assert 'data-testid="team-stores-bodies"' in page and 'data-testid="logging-form"' not in page
    assert posted.status_code == 403
    assert stores_bodies(team) is True
