"""Create or update a user for scripted set-up, with a membership if asked:

    manage.py create_user --email E --password P [--platform-admin]
    manage.py create_user --email E --password P --tenant Acme --role tenant_admin      # or finance
    manage.py create_user --email E --password P --tenant Acme --team Checkout --role team_owner   # or member

The username is the email. The email address is marked verified and primary, so the user can sign in (and get
an API token) with email verification mandatory. Missing tenants and teams are created. tenant_admin and
finance are tenant-wide roles: their membership has no team, and a --team given with them is only created.
team_owner and member need --team (default role: member). Running it again updates the password, adds the
membership (or changes its role) and leaves everything else alone; --platform-admin is never taken away.
"""

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Q
from django.utils.text import slugify

from portal import services
from portal.models import Membership, Team, Tenant
from portal.services import audit

Role = Membership.Role
TENANT_WIDE_ROLES = {Role.TENANT_ADMIN, Role.FINANCE}
ACTOR_LABEL = "manage.py create_user"


class Command(BaseCommand):
    help = "Create or update a user (verified email), optionally with a tenant or team role."

    def add_arguments(self, parser):
        parser.add_argument("--email", required=True)
        parser.add_argument("--password", required=True)
        parser.add_argument("--tenant", default="", help="tenant name or slug; created if missing")
        parser.add_argument("--team", default="", help="team name or slug in --tenant (default tenant: 'default')")
        parser.add_argument("--role", choices=Role.values, default=None)
        parser.add_argument("--platform-admin", action="store_true", help="make the user a platform admin")

    def handle(self, *args, email, password, tenant, team, role, platform_admin, **options):
        email, tenant, team = email.strip().lower(), tenant.strip(), team.strip()
        if "@" not in email:
            raise CommandError("--email must be an email address")
        role = role or (Role.MEMBER if team else None)
        if role is None and tenant:
            raise CommandError("--tenant needs a --role: tenant_admin or finance, or a team role with --team")
        if role in {Role.TEAM_OWNER, Role.MEMBER} and not team:
            raise CommandError(f"--role {role} needs --team")
        with transaction.atomic():
            user, created = self._user(email, password, platform_admin)
            if role:
                self._membership(user, tenant or "default", team, role)
        self.stdout.write(f"{'created' if created else 'updated'} {email} (id {user.pk})")

    def _user(self, email: str, password: str, platform_admin: bool):
        User = get_user_model()
        user = User.objects.filter(Q(username__iexact=email) | Q(email__iexact=email)).order_by("pk").first()
        created = user is None
        if created:
            user = User(username=email, email=email)
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        user.email = email
        user.set_password(password)
        if platform_admin:
            user.is_staff = user.is_superuser = True
        user.save()
        # Verified and primary: allauth lets the user sign in with email verification mandatory.
        EmailAddress.objects.filter(user=user).exclude(email__iexact=email).update(primary=False)
        address = EmailAddress.objects.filter(user=user, email__iexact=email).first()
        if address is None:
            EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
        else:
            address.verified = address.primary = True
            address.save(update_fields=["verified", "primary"])
        return user, created

    def _membership(self, user, tenant_name: str, team_name: str, role: str) -> None:
        tenant = Tenant.objects.filter(Q(name=tenant_name) | Q(slug=tenant_name)).first()
        if tenant is None and role == Role.TENANT_ADMIN:
            tenant = services.create_tenant(name=tenant_name, admin=user)  # makes the user its admin, audited
        team = self._team(tenant, tenant_name, team_name) if team_name else None
        tenant = team.tenant if team else tenant
        if tenant is None:
            # A finance user of a tenant that does not exist yet: the tenant starts without an admin.
            tenant, _ = Tenant.objects.get_or_create(slug=slugify(tenant_name)[:100], defaults={"name": tenant_name})
        membership, is_new = Membership.objects.get_or_create(
            user=user, tenant=tenant, team=None if role in TENANT_WIDE_ROLES else team, defaults={"role": role}
        )
        if not is_new and membership.role == role:
            return
        if not is_new:
            membership.role = role
            membership.save(update_fields=["role"])
        audit.record(
            tenant=tenant,
            actor=None,
            actor_label=ACTOR_LABEL,
            action="membership.set",
            target=membership,
            details={"email": user.email, "role": role, "team": team.name if membership.team else None},
        )

    @staticmethod
    def _team(tenant: Tenant | None, tenant_name: str, team_name: str) -> Team:
        if tenant is not None:
            found = Team.objects.filter(Q(name=team_name) | Q(slug=team_name), tenant=tenant).first()
            if found is not None:
                return found
        # ensure_team finds a tenant by the slug of the name it is given; a stored slug is its own slug.
        return services.ensure_team(team_name=team_name, tenant_name=tenant.slug if tenant else tenant_name)
