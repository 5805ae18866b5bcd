"""Reads of the portal, each scoped to what one user may see.

Every selector takes the user explicitly, so a read that forgets its scope is visible in review. A row outside
the scope is simply absent: the REST API answers 404 for it, the same as for an id that does not exist, so
ids of another tenant cannot be probed.
"""

from django.db.models import Q, QuerySet

from portal import roles
from portal.models import APIKey, AuditLogEntry, Invitation, Membership, Product, Subscription, Team, Tenant


def visible_tenants(*, user) -> QuerySet[Tenant]:
    return roles.tenants_of(user).order_by("name")


def administered_tenants(*, user) -> QuerySet[Tenant]:
    """Tenants whose admin the user is: all of them for platform admins."""
    if roles.is_platform_admin(user):
        return Tenant.objects.all()
    if not user or not user.is_authenticated:
        return Tenant.objects.none()
    admin_of = Membership.objects.filter(user=user, role=Membership.Role.TENANT_ADMIN).values("tenant")
    return Tenant.objects.filter(pk__in=admin_of)


def visible_teams(*, user) -> QuerySet[Team]:
    return roles.teams_of(user).select_related("tenant").order_by("tenant__name", "name")


def team_memberships(*, team: Team) -> QuerySet[Membership]:
    return Membership.objects.filter(team=team).select_related("user").order_by("created_at", "id")


def team_invitations(*, team: Team) -> QuerySet[Invitation]:
    return Invitation.objects.filter(team=team).select_related("invited_by").order_by("-created_at", "-id")


def visible_products(*, user) -> QuerySet[Product]:
    """Published platform products, and the products of the user's tenants (unpublished ones to their admins)."""
    products = Product.objects.prefetch_related("aliases").order_by("name", "id")
    if roles.is_platform_admin(user):
        return products
    if not user or not user.is_authenticated:
        return products.none()
    published_to_user = Q(is_published=True) & (Q(tenant__isnull=True) | Q(tenant__in=roles.tenants_of(user)))
    return products.filter(published_to_user | Q(tenant__in=administered_tenants(user=user)))


def visible_subscriptions(*, user) -> QuerySet[Subscription]:
    subscriptions = Subscription.objects.select_related("team__tenant", "product", "requested_by", "decided_by")
    return subscriptions.filter(team__in=roles.teams_of(user)).order_by("-created_at", "-id")


def visible_api_keys(*, user) -> QuerySet[APIKey]:
    keys = APIKey.objects.select_related("team").prefetch_related("subscriptions")
    return keys.filter(team__in=roles.teams_of(user)).order_by("-created_at", "-id")


def visible_audit_log(*, user) -> QuerySet[AuditLogEntry]:
    """Platform admins read every entry (platform-wide ones have no tenant); tenant admins their tenants'."""
    entries = AuditLogEntry.objects.select_related("actor").order_by("-created_at", "-id")
    if roles.is_platform_admin(user):
        return entries
    return entries.filter(tenant__in=administered_tenants(user=user))


def can_read_audit_log(*, user) -> bool:
    return roles.is_platform_admin(user) or administered_tenants(user=user).exists()
