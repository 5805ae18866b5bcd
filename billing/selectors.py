from datetime import datetime

from django.db.models import QuerySet

from billing.models import Budget, UsageRecord


def usage_records_between(*, since: datetime | None, until: datetime | None) -> QuerySet[UsageRecord]:
    """Records with since <= created_at < until, oldest first (platform-wide: operators and finance)."""
    records = UsageRecord.objects.all()
    if since is not None:
        records = records.filter(created_at__gte=since)
    if until is not None:
        records = records.filter(created_at__lt=until)
    return records.order_by("created_at", "id")


def visible_budgets(*, user) -> QuerySet[Budget]:
    """Every budget of the tenants whose billing the user reads (tenant admins, finance, platform admins);
    besides, the budgets on the user's own teams and their keys and subscriptions."""
    from django.db.models import Q

    from portal import roles
    from portal.models import APIKey, Subscription

    if roles.is_platform_admin(user):
        return Budget.objects.all()
    if not user or not user.is_authenticated:
        return Budget.objects.none()
    billing_tenants = [t.pk for t in roles.tenants_of(user) if roles.can_read_billing(user, t)]
    teams = roles.teams_of(user).values("pk")
    own = (
        Q(scope=Budget.Scope.TEAM, target_id__in=teams)
        | Q(scope=Budget.Scope.KEY, target_id__in=APIKey.objects.filter(team__in=teams).values("pk"))
        | Q(scope=Budget.Scope.SUBSCRIPTION, target_id__in=Subscription.objects.filter(team__in=teams).values("pk"))
    )
    return Budget.objects.filter(Q(tenant__in=billing_tenants) | own).distinct()
