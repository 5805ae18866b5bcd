"""Data residency of teams and keys: the services' rules (slugs, bounds, a key only narrows its team, audit),
the REST API (read, PATCH, key creation, 400s that name the field, another tenant's team is a 404), the
console's forms, and that every change reaches the change feed the gateways apply."""

import pytest
from django.urls import reverse

from portal import services
from portal.errors import NotAllowed
from portal.models import APIKey, AuditLogEntry, Membership, Team
from portal.services import residency
from routing.control_plane import loader
from routing.models import ChangeEvent
from tests.factories import TeamFactory
from tests.portal.factories import MembershipFactory, token_client

pytestmark = pytest.mark.django_db
Role = Membership.Role


@pytest.fixture
def team():
    return TeamFactory()


@pytest.fixture
def owner(team):
    return MembershipFactory(team=team, role=Role.TEAM_OWNER).user


@pytest.fixture
def admin(team):
    return MembershipFactory(team=None, tenant=team.tenant, role=Role.TENANT_ADMIN).user


def residency_of(row) -> tuple[list[str], list[str]]:
    row.refresh_from_db()
    return row.allowed_regions, row.required_tags


def set_team(team, **lists) -> Team:
    """The team's residency set by a tenant admin (the state a test starts from)."""
    admin = MembershipFactory(team=None, tenant=team.tenant, role=Role.TENANT_ADMIN).user
    return services.set_team_residency(team=team, changed_by=admin, **lists)


# --- The services ---------------------------------------------------------------------------------------------


def test_a_team_owner_sets_regions_and_tags_stored_lowercase_once_each_and_audited(team, owner):
    services.set_team_residency(
        team=team, changed_by=owner, allowed_regions=["EU", "us-east", "eu"], required_tags=["zero-retention"]
    )
    services.set_team_residency(team=team, changed_by=owner, allowed_regions=[])

    assert residency_of(team) == ([], ["zero-retention"])
    entries = AuditLogEntry.objects.filter(action="team.residency_changed").order_by("pk")
    assert [(e.actor, e.target_id, e.details) for e in entries] == [
        (
            owner,
            str(team.pk),
            {
                "before": {"allowed_regions": [], "required_tags": []},
                "after": {"allowed_regions": ["eu", "us-east"], "required_tags": ["zero-retention"]},
            },
        ),
        (owner, str(team.pk), {"before": {"allowed_regions": ["eu", "us-east"]}, "after": {"allowed_regions": []}}),
    ]


def test_setting_the_residency_a_team_has_already_writes_and_audits_nothing(team, owner):
    set_team(team, allowed_regions=["eu"])
    before = loader.latest_version()

    services.set_team_residency(team=team, changed_by=owner, allowed_regions=["EU"], required_tags=[])

    assert AuditLogEntry.objects.filter(action="team.residency_changed").count() == 1
    assert loader.latest_version() == before


@pytest.mark.parametrize("role", [Role.MEMBER, Role.FINANCE])
def test_members_and_finance_cannot_change_a_teams_residency(team, role):
    user = MembershipFactory(team=team, role=role).user

    with pytest.raises(NotAllowed):
        services.set_team_residency(team=team, changed_by=user, allowed_regions=["eu"])

    assert residency_of(team) == ([], [])


def test_another_tenants_admin_cannot_change_a_teams_residency(team):
    stranger = MembershipFactory(team=None, tenant=TeamFactory().tenant, role=Role.TENANT_ADMIN).user

    with pytest.raises(NotAllowed):
        services.set_team_residency(team=team, changed_by=stranger, required_tags=["hipaa"])


@pytest.mark.parametrize(
    "names",
    [
        "eu",  # a string, not a list
        {"eu": True},
        [5],
        [""],
        ["eu west"],
        ["eu/west"],
        ["région"],
        ["\u212a"],  # the Kelvin sign, which lowercases to an ASCII "k"
        ["x" * 33],
        [f"r{n}" for n in range(21)],
    ],
)
@pytest.mark.parametrize("field", residency.RESIDENCY_FIELDS)
def test_a_list_that_is_not_short_slugs_is_refused_naming_its_field(team, owner, field, names):
    with pytest.raises(residency.InvalidResidency) as refused:
        services.set_team_residency(team=team, changed_by=owner, **{field: names})

    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")
    assert residency_of(team) == ([], [])


def test_twenty_names_of_thirty_two_characters_are_the_most_a_list_takes(team, owner):
    longest = [f"{n:02d}" + "x" * 30 for n in range(20)]

    services.set_team_residency(team=team, changed_by=owner, allowed_regions=longest, required_tags=["a_b-1"])

    assert residency_of(team) == (longest, ["a_b-1"])


def test_a_key_may_list_only_regions_its_team_allows(team, owner):
    set_team(team, allowed_regions=["eu", "uk"])

    narrowed = services.issue_api_key(team=team, allowed_regions=["EU"], created_by=owner).api_key
    with pytest.raises(residency.InvalidResidency) as refused:
        services.issue_api_key(team=team, allowed_regions=["eu", "us", "ap"], created_by=owner)

    assert residency_of(narrowed) == (["eu"], [])
    assert refused.value.field == "allowed_regions"
    assert "ap, us are not among" in str(refused.value) and "(eu, uk)" in str(refused.value)
    assert APIKey.objects.count() == 1


def test_a_key_of_a_team_that_allows_any_region_may_list_any_and_adds_tags_of_its_own(team, owner):
    set_team(team, required_tags=["zero-retention"])

    issued = services.issue_api_key(team=team, allowed_regions=["us"], required_tags=["hipaa"], created_by=owner)

    assert residency_of(issued.api_key) == (["us"], ["hipaa"])
    entry = AuditLogEntry.objects.get(action="api_key.created", target_id=str(issued.api_key.pk))
    assert (entry.details["allowed_regions"], entry.details["required_tags"]) == (["us"], ["hipaa"])


def test_a_rotated_key_keeps_the_regions_and_tags_it_reaches(team, owner):
    set_team(team, allowed_regions=["eu", "uk"])
    old = services.issue_api_key(team=team, allowed_regions=["eu", "uk"], required_tags=["hipaa"]).api_key
    set_team(team, allowed_regions=["eu"])  # narrowed since: the old key reaches eu only

    new = services.rotate_api_key(api_key=old, rotated_by=owner).api_key

    assert residency_of(new) == (["eu"], ["hipaa"])


def test_a_key_that_reaches_no_region_of_its_team_any_more_is_not_rotated_into_one_that_reaches_them_all(team, owner):
    old = services.issue_api_key(team=team, allowed_regions=["us"]).api_key
    set_team(team, allowed_regions=["eu"])

    with pytest.raises(residency.InvalidInput, match="reaches none of its team's regions"):
        services.rotate_api_key(api_key=old, rotated_by=owner)

    assert APIKey.objects.count() == 1


def test_the_keys_beyond_a_narrowed_team_are_its_live_keys_listing_a_region_it_dropped(team):
    set_team(team, allowed_regions=["eu", "us"])
    beyond = services.issue_api_key(team=team, allowed_regions=["us"]).api_key
    services.issue_api_key(team=team, allowed_regions=["eu"])
    services.issue_api_key(team=team)
    revoked = services.issue_api_key(team=team, allowed_regions=["us"]).api_key
    services.revoke_api_key(api_key=revoked)

    narrowed = set_team(team, allowed_regions=["eu"])

    assert residency.keys_beyond_team(team=narrowed) == [beyond]


@pytest.mark.django_db(transaction=True)
def test_a_residency_change_of_a_team_or_a_new_key_records_a_change_the_gateways_apply(team, owner):
    def changes_after(version: int) -> list[tuple[str, int | None]]:
        events = ChangeEvent.objects.filter(version__gt=version).order_by("version")
        return list(events.values_list("kind", "object_id"))

    before = loader.latest_version()
    services.set_team_residency(team=team, changed_by=owner, allowed_regions=["eu"])
    after_team = loader.latest_version()
    issued = services.issue_api_key(team=team, allowed_regions=["eu"], required_tags=["hipaa"])

    assert changes_after(before) == [("team", team.pk), ("key", issued.api_key.pk)]
    assert changes_after(after_team) == [("key", issued.api_key.pk)]


# --- REST -----------------------------------------------------------------------------------------------------


def test_teams_and_keys_show_their_residency(team, owner):
    set_team(team, allowed_regions=["eu"], required_tags=["zero-retention"])
    issued = services.issue_api_key(team=team, name="k", required_tags=["hipaa"], source=APIKey.Source.PORTAL)
    client = token_client(owner)

    shown_team = client.get(f"/api/v1/teams/{team.pk}").json()
    shown_key = client.get(f"/api/v1/keys/{issued.api_key.pk}").json()

    assert (shown_team["allowed_regions"], shown_team["required_tags"]) == (["eu"], ["zero-retention"])
    assert (shown_key["allowed_regions"], shown_key["required_tags"]) == ([], ["hipaa"])


def test_a_team_owner_patches_the_residency_and_it_is_shown_and_audited(team, owner):
    client = token_client(owner)

    changed = client.patch(f"/api/v1/teams/{team.pk}/", {"allowed_regions": ["EU", "uk"]}, format="json")
    tags = client.patch(f"/api/v1/teams/{team.pk}", {"required_tags": ["zero-retention"]}, format="json")

    assert changed.status_code == 200, changed.content
    assert (changed.json()["allowed_regions"], changed.json()["required_tags"]) == (["eu", "uk"], [])
    assert (tags.json()["allowed_regions"], tags.json()["required_tags"]) == (["eu", "uk"], ["zero-retention"])
    assert residency_of(team) == (["eu", "uk"], ["zero-retention"])
    assert AuditLogEntry.objects.filter(action="team.residency_changed", actor=owner).count() == 2


def test_a_team_owner_cannot_slip_a_rate_limit_in_beside_the_residency(team, owner):
    answer = token_client(owner).patch(
        f"/api/v1/teams/{team.pk}", {"allowed_regions": ["eu"], "rpm_limit": 10_000}, format="json"
    )

    assert answer.status_code == 403
    assert Team.objects.values_list("rpm_limit", "allowed_regions").get(pk=team.pk) == (None, [])


@pytest.mark.parametrize(
    ("role", "body"),
    [
        (Role.MEMBER, {"allowed_regions": "not a list"}),
        (Role.TEAM_OWNER, {"allowed_regions": ["eu"], "rpm_limit": "many"}),
    ],
)
def test_who_may_is_answered_before_what_was_sent(team, role, body):
    user = MembershipFactory(team=team, role=role).user

    answer = token_client(user).patch(f"/api/v1/teams/{team.pk}", body, format="json")

    assert (answer.status_code, answer.json()["code"]) == (403, "permission_denied")


def test_a_tenant_admin_changes_limits_and_residency_in_one_patch(team, admin):
    answer = token_client(admin).patch(
        f"/api/v1/teams/{team.pk}", {"rpm_limit": 60, "required_tags": ["hipaa"]}, format="json"
    )

    assert answer.status_code == 200, answer.content
    assert (answer.json()["rpm_limit"], answer.json()["required_tags"]) == (60, ["hipaa"])
    actions = set(AuditLogEntry.objects.values_list("action", flat=True))
    assert {"team.limits_changed", "team.residency_changed"} <= actions


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"allowed_regions": "eu"}, "allowed_regions"),
        ({"allowed_regions": None}, "allowed_regions"),
        ({"allowed_regions": {"eu": 1}}, "allowed_regions"),
        ({"allowed_regions": [5]}, "allowed_regions"),
        ({"allowed_regions": [["eu"]]}, "allowed_regions"),
        ({"required_tags": [""]}, "required_tags"),
        ({"required_tags": ["no spaces"]}, "required_tags"),
        ({"required_tags": ["x" * 33]}, "required_tags"),
        ({"required_tags": [f"t{n}" for n in range(21)]}, "required_tags"),
        ({"allowed_regions": ["eu"], "name": "renamed"}, "name"),
    ],
)
def test_bad_residency_is_refused_with_a_400_naming_the_field(team, owner, body, field):
    answer = token_client(owner).patch(f"/api/v1/teams/{team.pk}", body, format="json")

    assert answer.status_code == 400
    assert field in answer.json(), answer.json()
    assert residency_of(team) == ([], [])
    assert not AuditLogEntry.objects.filter(action="team.residency_changed").exists()


def test_a_member_cannot_patch_the_residency_and_another_tenants_admin_finds_no_team(team):
    member = MembershipFactory(team=team, role=Role.MEMBER).user
    stranger = MembershipFactory(team=None, tenant=TeamFactory().tenant, role=Role.TENANT_ADMIN).user

    by_member = token_client(member).patch(f"/api/v1/teams/{team.pk}", {"allowed_regions": ["eu"]}, format="json")
    by_stranger = token_client(stranger).patch(f"/api/v1/teams/{team.pk}", {"allowed_regions": ["eu"]}, format="json")
    read_by_stranger = token_client(stranger).get(f"/api/v1/teams/{team.pk}")

    assert (by_member.status_code, by_member.json()["code"]) == (403, "permission_denied")
    assert (by_stranger.status_code, read_by_stranger.status_code) == (404, 404)
    assert residency_of(team) == ([], [])


def test_a_key_is_created_with_regions_within_its_teams_and_tags_of_its_own(team, owner):
    set_team(team, allowed_regions=["eu", "uk"])

    created = token_client(owner).post(
        "/api/v1/keys/",
        {"team": team.pk, "name": "eu only", "allowed_regions": ["eu"], "required_tags": ["Hipaa"]},
        format="json",
    )

    assert created.status_code == 201, created.content
    assert (created.json()["allowed_regions"], created.json()["required_tags"]) == (["eu"], ["hipaa"])
    assert residency_of(APIKey.objects.get()) == (["eu"], ["hipaa"])


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"allowed_regions": ["us"]}, "allowed_regions", "only narrow its team's regions (eu)"),
        ({"allowed_regions": "eu"}, "allowed_regions", "list"),
        ({"allowed_regions": [7]}, "allowed_regions", "string"),
        ({"required_tags": ["a" * 40]}, "required_tags", "32 characters"),
    ],
)
def test_a_key_that_would_widen_its_team_or_names_badly_is_refused_with_a_400_naming_the_field(
    team, owner, body, field, says
):
    set_team(team, allowed_regions=["eu"])

    refused = token_client(owner).post("/api/v1/keys/", {"team": team.pk, **body}, format="json")

    assert refused.status_code == 400
    assert list(refused.json()) == [field]
    assert says in refused.json()[field][0]
    assert not APIKey.objects.exists()


# --- The console ----------------------------------------------------------------------------------------------


def team_url(team) -> str:
    return reverse("console:team", args=[team.pk])


def post_residency(client, team, **fields):
    return client.post(team_url(team), {"form": "residency", **fields})


def test_the_team_page_shows_its_residency_and_its_owner_changes_it(client, team, owner):
    client.force_login(owner)

    empty = client.get(team_url(team)).content.decode()
    response = post_residency(client, team, allowed_regions="EU, uk", required_tags="zero-retention")
    page = client.get(team_url(team)).content.decode()

    assert 'data-testid="residency-form"' in empty and "Any region" in empty
    assert response.status_code == 302 and response.url.endswith("#residency")
    assert residency_of(team) == (["eu", "uk"], ["zero-retention"])
    assert '<span class="badge">eu</span>' in page and '<span class="badge">zero-retention</span>' in page
    assert 'value="eu, uk"' in page  # the form starts from what is stored
    assert "Data residency saved" in page
    assert AuditLogEntry.objects.filter(action="team.residency_changed", actor=owner).exists()


def test_bad_names_in_the_residency_form_are_shown_beside_their_field_and_change_nothing(client, team, owner):
    client.force_login(owner)

    response = post_residency(client, team, allowed_regions="eu, west/1", required_tags="")

    assert response.status_code == 200
    assert response.context["residency_form"].errors == {
        "allowed_regions": ["Names may contain only letters, digits, hyphens and underscores."]
    }
    assert residency_of(team) == ([], [])


def test_narrowing_a_team_warns_of_keys_that_list_a_region_it_dropped(client, team, owner):
    set_team(team, allowed_regions=["eu", "us"])
    key = services.issue_api_key(team=team, allowed_regions=["us"]).api_key
    client.force_login(owner)

    post_residency(client, team, allowed_regions="eu")
    page = client.get(team_url(team)).content.decode()

    assert f"Keys {key.prefix}… list regions outside the team" in page
    assert f'data-testid="key-residency-{key.prefix}">regions us<' in page


def test_a_member_sees_the_residency_without_the_form_and_cannot_post_it(client, team):
    set_team(team, required_tags=["hipaa"])
    client.force_login(MembershipFactory(team=team, role=Role.MEMBER).user)

    page = client.get(team_url(team)).content.decode()
    posted = post_residency(client, team, allowed_regions="eu")

    assert '<span class="badge">hipaa</span>' in page and 'data-testid="residency-form"' not in page
    assert posted.status_code == 403
    assert residency_of(team) == ([], ["hipaa"])


def test_another_tenants_admin_posting_the_residency_form_finds_no_team(client, team):
    client.force_login(MembershipFactory(team=None, tenant=TeamFactory().tenant, role=Role.TENANT_ADMIN).user)

    assert post_residency(client, team, allowed_regions="eu").status_code == 404
    assert residency_of(team) == ([], [])


def test_a_post_to_the_team_page_without_a_known_form_name_is_refused(client, team, owner):
    client.force_login(owner)

    assert client.post(team_url(team), {"allowed_regions": "eu"}).status_code == 400
    assert residency_of(team) == ([], [])


def test_the_new_key_form_takes_regions_within_the_teams_and_tags(client, team, owner):
    set_team(team, allowed_regions=["eu", "uk"])
    client.force_login(owner)
    url = reverse("console:key-new", args=[team.pk])

    form_page = client.get(url).content.decode()
    widened = client.post(url, {"name": "too wide", "allowed_regions": "eu, us"})
    made = client.post(url, {"name": "eu only", "allowed_regions": "EU", "required_tags": "hipaa, zdr"})

    assert 'name="allowed_regions"' in form_page and "within the team's: eu, uk" in form_page
    assert widened.context["form"].errors == {"allowed_regions": ["Not among the team's regions (eu, uk): us."]}
    assert made.status_code == 200 and "secret" in made.context
    assert residency_of(APIKey.objects.get(name="eu only")) == (["eu"], ["hipaa", "zdr"])
    assert not APIKey.objects.filter(name="too wide").exists()
