import secrets

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from portal.errors import InvalidInput
from portal.models import Invitation, Membership, Team, Tenant
from portal.services import audit


def ensure_team(*, team_name: str, tenant_name: str = "default") -> Team:
    tenant, _ = Tenant.objects.get_or_create(slug=slugify(tenant_name)[:100], defaults={"name": tenant_name})
    team, _ = Team.objects.get_or_create(tenant=tenant, slug=slugify(team_name)[:100], defaults={"name": team_name})
    return team


def _unique_slug(model, base: str, **scope) -> str:
    base = slugify(base)[:90] or "item"
    slug, n = base, 1
    while model.objects.filter(slug=slug, **scope).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def create_tenant(*, name: str, admin) -> Tenant:
    if not name.strip():
        raise InvalidInput("a tenant needs a name")
    if Tenant.objects.filter(name=name.strip()).exists():
        raise InvalidInput("that organisation name is taken")
    tenant = Tenant.objects.create(name=name.strip(), slug=_unique_slug(Tenant, name))
    Membership.objects.create(user=admin, tenant=tenant, team=None, role=Membership.Role.TENANT_ADMIN)
    audit.record(tenant=tenant, actor=admin, action="tenant.created", target=tenant)
    return tenant


@transaction.atomic
def create_team(*, tenant: Tenant, name: str, owner) -> Team:
    if not name.strip():
        raise InvalidInput("a team needs a name")
    if Team.objects.filter(tenant=tenant, name=name.strip()).exists():
        raise InvalidInput("this organisation already has a team with that name")
    team = Team.objects.create(tenant=tenant, name=name.strip(), slug=_unique_slug(Team, name, tenant=tenant))
    Membership.objects.create(user=owner, tenant=tenant, team=team, role=Membership.Role.TEAM_OWNER)
    audit.record(tenant=tenant, actor=owner, action="team.created", target=team)
    return team


@transaction.atomic
def invite_member(*, team: Team, email: str, role: str, invited_by) -> Invitation:
    if role not in {Membership.Role.MEMBER, Membership.Role.TEAM_OWNER}:
        raise InvalidInput("a team invitation is for a member or a team owner")
    invitation = Invitation.objects.create(
        team=team, email=email.strip().lower(), role=role, token=secrets.token_urlsafe(32), invited_by=invited_by
    )
    audit.record(
        tenant=team.tenant,
        actor=invited_by,
        action="team.member_invited",
        target=team,
        details={"email": invitation.email, "role": role},
    )
    return invitation


@transaction.atomic
def accept_invitation(*, invitation: Invitation, user) -> Membership:
    if invitation.accepted_at is not None:
        raise InvalidInput("this invitation has been used already")
    if user.email.lower() != invitation.email:
        raise InvalidInput("this invitation is for another email address")
    membership, _ = Membership.objects.get_or_create(
        user=user, tenant=invitation.team.tenant, team=invitation.team, defaults={"role": invitation.role}
    )
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_at"])
    audit.record(tenant=invitation.team.tenant, actor=user, action="team.member_joined", target=invitation.team)
    return membership
