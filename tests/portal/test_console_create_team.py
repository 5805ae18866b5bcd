import pytest
from django.urls import reverse

from portal.models import AuditLogEntry, Membership, Team, Tenant
from tests.portal.factories import UserFactory
from tests.portal.test_console_world import build_world

URL = "/console/teams/new/"
Role = Membership.Role


@pytest.fixture
def world(db):
    return build_world()


@pytest.mark.django_db
def test_a_new_user_founds_an_organisation_and_a_team_and_holds_both_roles(client):
    user = UserFactory()
    client.force_login(user)
    assert 'data-testid="create-team-form"' in client.get(URL).content.decode()

    response = client.post(URL, {"organisation_name": "Initech", "team_name": "Payments"})

    team = Team.objects.get(name="Payments")
    assert response.status_code == 302 and response.headers["location"] == reverse("console:team", args=[team.pk])
    assert team.tenant.name == "Initech"
    assert set(Membership.objects.filter(user=user).values_list("role", "team")) == {
        (Role.TENANT_ADMIN, None),
        (Role.TEAM_OWNER, team.pk),
    }
    assert set(AuditLogEntry.objects.filter(actor=user).values_list("action", flat=True)) == {
        "tenant.created",
        "team.created",
    }


@pytest.mark.django_db
def test_a_taken_organisation_name_is_refused_beside_its_field_and_creates_nothing(client):
    Tenant.objects.create(name="Initech", slug="initech")
    client.force_login(UserFactory())

    response = client.post(URL, {"organisation_name": "Initech", "team_name": "Payments"})

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "organisation_name": ["That name is taken. Pick another, or ask its admin to invite you."]
    }
    page = response.content.decode()
    field = page[page.index('id="field-organisation_name"') :]
    assert field.index("That name is taken") < field.index('id="field-team_name"')
    assert not Team.objects.exists()


@pytest.mark.django_db
def test_missing_names_are_reported_on_each_field(client):
    client.force_login(UserFactory())

    response = client.post(URL, {"organisation_name": "", "team_name": " "})

    assert set(response.context["form"].errors) == {"organisation_name", "team_name"}
    assert response.content.decode().count('class="field-error"') == 2
    assert not Tenant.objects.exists()


def test_a_tenant_admin_adds_a_team_to_their_organisation_and_owns_it(client, world):
    admin = world.users["tenant_admin"]
    client.force_login(admin)
    form = client.get(URL).context["form"]
    assert list(form.fields["organisation"].queryset) == [world.tenant]
    assert not form.creates_organisation

    client.post(URL, {"organisation": world.tenant.pk, "team_name": "Platform"})

    team = Team.objects.get(name="Platform")
    assert team.tenant == world.tenant
    assert Membership.objects.filter(user=admin, team=team, role=Role.TEAM_OWNER).exists()
    assert AuditLogEntry.objects.filter(action="team.created", target_id=str(team.pk), actor=admin).exists()


def test_a_team_name_already_used_in_the_organisation_is_refused(client, world):
    client.force_login(world.users["tenant_admin"])

    response = client.post(URL, {"organisation": world.tenant.pk, "team_name": "Checkout"})

    assert response.context["form"].errors == {"team_name": ["Acme already has a team with that name."]}


def test_an_admin_cannot_put_a_team_into_another_tenants_organisation(client, world):
    client.force_login(world.users["tenant_admin"])

    response = client.post(URL, {"organisation": world.rival_team.tenant.pk, "team_name": "Sneaky"})

    assert "organisation" in response.context["form"].errors
    assert not Team.objects.filter(name="Sneaky").exists()


@pytest.mark.parametrize("role", ["member", "team_owner", "finance"])
def test_members_of_an_organisation_ask_its_admins_instead(client, world, role):
    client.force_login(world.users[role])

    assert client.get(URL).status_code == 403
    assert client.post(URL, {"organisation_name": "Shadow IT", "team_name": "x"}).status_code == 403
    assert not Tenant.objects.filter(name="Shadow IT").exists()
