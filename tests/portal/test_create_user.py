"""manage.py create_user: users for scripted set-up, who can sign in and hold the role they were given."""

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from portal.models import AuditLogEntry, Membership, Team, Tenant
from tests.factories import TeamFactory

pytestmark = pytest.mark.django_db
Role = Membership.Role
PASSWORD = "s3t-up-by-script"


def create_user(*args: str) -> None:
    call_command("create_user", "--password", PASSWORD, *args)


def memberships_of(email: str) -> set[tuple[str, str | None, str]]:
    return {
        (m.tenant.name, m.team.name if m.team else None, m.role)
        for m in Membership.objects.filter(user__email=email).select_related("tenant", "team")
    }


def test_a_new_user_has_the_email_as_username_a_verified_address_and_can_get_a_token(settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"

    create_user("--email", "Ada@Acme.test")

    user = get_user_model().objects.get()
    assert (user.username, user.email, user.is_superuser) == ("ada@acme.test", "ada@acme.test", False)
    address = EmailAddress.objects.get(user=user)
    assert address.verified and address.primary
    token = APIClient().post("/api/v1/auth/token", {"email": "ada@acme.test", "password": PASSWORD}, format="json")
    assert token.status_code == 200


def test_a_platform_admin_is_a_superuser_and_staff():
    create_user("--email", "root@platform.test", "--platform-admin")

    user = get_user_model().objects.get()
    assert user.is_superuser and user.is_staff
    assert not Membership.objects.exists()


def test_a_tenant_admin_of_a_new_tenant_is_tenant_wide_and_the_tenant_is_created():
    create_user("--email", "admin@acme.test", "--tenant", "Acme", "--role", "tenant_admin")

    assert memberships_of("admin@acme.test") == {("Acme", None, Role.TENANT_ADMIN)}
    assert AuditLogEntry.objects.filter(action="tenant.created", tenant__name="Acme").exists()


def test_a_team_owner_gets_the_team_created_in_the_named_tenant():
    create_user("--email", "admin@acme.test", "--tenant", "Acme", "--role", "tenant_admin")
    create_user("--email", "owner@acme.test", "--tenant", "Acme", "--team", "Checkout", "--role", "team_owner")

    assert memberships_of("owner@acme.test") == {("Acme", "Checkout", Role.TEAM_OWNER)}
    assert Tenant.objects.count() == 1 and Team.objects.get().tenant.name == "Acme"


def test_finance_stays_tenant_wide_even_with_a_team():
    create_user("--email", "cfo@acme.test", "--tenant", "Acme", "--team", "Checkout", "--role", "finance")

    assert memberships_of("cfo@acme.test") == {("Acme", None, Role.FINANCE)}
    assert Team.objects.get().name == "Checkout"


def test_a_team_given_alone_makes_a_member_of_it_in_the_default_tenant():
    create_user("--email", "dev@acme.test", "--team", "Checkout")

    assert memberships_of("dev@acme.test") == {("default", "Checkout", Role.MEMBER)}


def test_an_existing_team_is_found_by_its_slug():
    team = TeamFactory(name="Checkout Team", slug="checkout", tenant__name="Acme", tenant__slug="acme")

    create_user("--email", "dev@acme.test", "--tenant", "acme", "--team", "checkout", "--role", "member")

    assert Membership.objects.get().team == team
    assert Team.objects.count() == 1


def test_running_it_again_updates_the_password_and_the_role_without_a_second_user():
    create_user("--email", "dev@acme.test", "--team", "Checkout")
    call_command(
        "create_user", "--email", "dev@acme.test", "--password", "an0ther-passphrase", "--team", "Checkout",
        "--role", "team_owner",
    )  # fmt: skip

    user = get_user_model().objects.get()
    assert user.check_password("an0ther-passphrase")
    assert memberships_of("dev@acme.test") == {("default", "Checkout", Role.TEAM_OWNER)}
    assert EmailAddress.objects.filter(user=user).count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenant", "Acme"], "--tenant needs a --role"),
        (["--tenant", "Acme", "--role", "team_owner"], "needs --team"),
        (["--role", "member"], "needs --team"),
    ],
)
def test_a_role_without_its_place_is_refused_and_nothing_is_created(args, message):
    with pytest.raises(CommandError, match=message):
        create_user("--email", "dev@acme.test", *args)

    assert not get_user_model().objects.exists()
    assert not Tenant.objects.exists()


def test_a_weak_password_is_refused():
    with pytest.raises(CommandError, match="too short"):
        call_command("create_user", "--email", "dev@acme.test", "--password", "abc")

    assert not get_user_model().objects.exists()
