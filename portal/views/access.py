"""Finding the object a URL names, within what the user may see.

Everything is looked up within the user's tenants first, so an id from another tenant is a 404 whatever
its guesser's role; inside their tenants, a missing right is a 403 (portal.roles decides which).
"""

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404

from portal import roles
from portal.models import APIKey, Membership, Subscription, Team

Role = Membership.Role


def _team_in_tenants(user, team_id: int) -> Team:
    teams = Team.objects.select_related("tenant").filter(tenant__in=roles.tenants_of(user))
    return get_object_or_404(teams, pk=team_id)


def team_to_view(user, team_id: int) -> Team:
    team = _team_in_tenants(user, team_id)
    if not roles.can_view_team(user, team):
        raise PermissionDenied("You are not a member of this team.")
    return team


def team_to_manage(user, team_id: int) -> Team:
    team = _team_in_tenants(user, team_id)
    if not roles.can_manage_team(user, team):
        raise PermissionDenied("Only the team's owners and the organisation's admins can do this.")
    return team


def key_to_manage(user, key_id: int) -> APIKey:
    keys = APIKey.objects.select_related("team__tenant").filter(team__tenant__in=roles.tenants_of(user))
    api_key = get_object_or_404(keys, pk=key_id)
    if not roles.can_manage_team(user, api_key.team):
        raise PermissionDenied("Only the team's owners and the organisation's admins can manage its keys.")
    return api_key


def subscription_in_tenants(user, subscription_id: int) -> Subscription:
    subscriptions = Subscription.objects.select_related("team__tenant", "product", "requested_by", "decided_by")
    return get_object_or_404(subscriptions.filter(team__tenant__in=roles.tenants_of(user)), pk=subscription_id)


def subscription_to_decide(user, subscription_id: int) -> Subscription:
    subscription = subscription_in_tenants(user, subscription_id)
    if not roles.can_approve(user, subscription.team.tenant):
        raise PermissionDenied("Only the organisation's admins can decide on subscriptions.")
    return subscription


def manageable_teams(user) -> QuerySet[Team]:
    """Teams the user may manage (roles.can_manage_team, as one query)."""
    if roles.is_platform_admin(user):
        return Team.objects.select_related("tenant").order_by("tenant__name", "name")
    if not user or not user.is_authenticated:
        return Team.objects.none()
    # As in roles: a managing role held tenant-wide covers every team, one held in a team covers that team.
    managing = Membership.objects.filter(user=user, role__in=[Role.TENANT_ADMIN, Role.TEAM_OWNER])
    tenant_wide = managing.filter(team__isnull=True).values("tenant")
    one_team = managing.filter(team__isnull=False).values("team")
    return (
        Team.objects.select_related("tenant")
        .filter(Q(tenant__in=tenant_wide) | Q(pk__in=one_team))
        .order_by("tenant__name", "name")
    )
