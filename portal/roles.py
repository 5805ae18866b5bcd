"""Who may do what: plain functions over memberships, shared by the console, the REST API and services.

Roles: platform admin (superuser) > tenant admin (tenant-wide membership) > team owner > member; finance
reads a tenant's billing. A user with no membership in a tenant sees nothing of it.
"""

from django.db.models import Q, QuerySet

from portal.models import Membership, Team, Tenant

Role = Membership.Role


def is_platform_admin(user) -> bool:
    return bool(user and user.is_authenticated and user.is_superuser)


def _roles(user, *, tenant: Tenant, team: Team | None = None) -> set[str]:
    if not user or not user.is_authenticated:
        return set()
    memberships = Membership.objects.filter(user=user, tenant=tenant)
    if team is not None:
        memberships = memberships.filter(Q(team=team) | Q(team__isnull=True))
    return set(memberships.values_list("role", flat=True))


def is_tenant_admin(user, tenant: Tenant) -> bool:
    return is_platform_admin(user) or Role.TENANT_ADMIN in _roles(user, tenant=tenant)


def can_approve(user, tenant: Tenant) -> bool:
    return is_tenant_admin(user, tenant)


def can_manage_team(user, team: Team) -> bool:
    roles = _roles(user, tenant=team.tenant, team=team)
    return is_platform_admin(user) or bool(roles & {Role.TENANT_ADMIN, Role.TEAM_OWNER})


def can_view_team(user, team: Team) -> bool:
    return is_platform_admin(user) or bool(_roles(user, tenant=team.tenant, team=team))


def can_read_billing(user, tenant: Tenant) -> bool:
    return is_platform_admin(user) or bool(_roles(user, tenant=tenant) & {Role.TENANT_ADMIN, Role.FINANCE})


def tenants_of(user) -> QuerySet[Tenant]:
    if is_platform_admin(user):
        return Tenant.objects.all()
    if not user or not user.is_authenticated:
        return Tenant.objects.none()
    return Tenant.objects.filter(memberships__user=user).distinct()


def teams_of(user) -> QuerySet[Team]:
    """Teams the user can see: all of a tenant's for its admins and finance, else their own teams."""
    if is_platform_admin(user):
        return Team.objects.all()
    if not user or not user.is_authenticated:
        return Team.objects.none()
    tenant_wide = Membership.objects.filter(
        user=user, team__isnull=True, role__in=[Role.TENANT_ADMIN, Role.FINANCE]
    ).values("tenant")
    own = Membership.objects.filter(user=user, team__isnull=False).values("team")
    return Team.objects.filter(Q(tenant__in=tenant_wide) | Q(pk__in=own)).distinct()
