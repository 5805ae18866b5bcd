from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import QuerySet
from django.utils import timezone

from billing import budgets
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


@dataclass(frozen=True)
class BudgetSpend:
    """A budget's spend in one period, as every page and the REST API show it.

    `spent_*` is the recorded spend of the budget's scope over the whole period (billing.budgets.recorded_spend,
    the figure the ledger catches its counters up to), including what was spent before the budget existed.
    `reserved_*` is what calls still running hold against the limit right now, read from the ledger's counters:
    shown beside the spend, never added to it."""

    period_start: datetime
    period_end: datetime
    spent_usd: Decimal
    spent_tokens: int
    reserved_usd: Decimal
    reserved_tokens: int


def budget_spend(budget: Budget, *, now: datetime | None = None) -> BudgetSpend:
    """The budget's spend in the period containing `now` (the current one by default)."""
    now = now or timezone.now()
    start, end = budgets.current_period(budget, now=now.timestamp())
    usd, tokens = budgets.recorded_spend(budget, start, end)
    in_flight = budgets.current_spend(budget)
    is_current = in_flight["period_start"] == start  # reservations exist only in the current period
    return BudgetSpend(
        period_start=start,
        period_end=end,
        spent_usd=usd,
        spent_tokens=tokens,
        reserved_usd=in_flight["reserved_usd"] if is_current else Decimal(0),
        reserved_tokens=in_flight["reserved_tokens"] if is_current else 0,
    )


def key_spend(*, team, start: datetime, end: datetime) -> dict[int, tuple[Decimal, int]]:
    """Each of the team's keys' recorded spend in [start, end), as {key id: (usd, tokens)}; keys that spent
    nothing are absent. The same definition of spend as budgets (billing.budgets.recorded_spend_by)."""
    return budgets.recorded_spend_by(where={"team_id": team.pk}, start=start, end=end, per="key")


def month_bounds(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The UTC calendar month containing `now`, as a monthly budget counts it."""
    return budgets.current_period(Budget(period=Budget.Period.MONTHLY), now=(now or timezone.now()).timestamp())


def target_spend(*, scope: str, target_id: int, start: datetime, end: datetime) -> tuple[Decimal, int]:
    """A tenant's, team's, key's or subscription's recorded spend in [start, end), budget or not."""
    return budgets.recorded_spend(Budget(scope=scope, target_id=target_id, period=Budget.Period.MONTHLY), start, end)


def budgets_covering_team(*, team) -> QuerySet[Budget]:
    """Active budgets a team's calls count against: its tenant's, its own, its keys' and its subscriptions'."""
    from django.db.models import Q

    from portal.models import APIKey, Subscription

    return Budget.objects.filter(
        Q(scope=Budget.Scope.TENANT, target_id=team.tenant_id)
        | Q(scope=Budget.Scope.TEAM, target_id=team.pk)
        | Q(scope=Budget.Scope.KEY, target_id__in=APIKey.objects.filter(team=team).values("pk"))
        | Q(scope=Budget.Scope.SUBSCRIPTION, target_id__in=Subscription.objects.filter(team=team).values("pk")),
        tenant_id=team.tenant_id,
        is_active=True,
    ).order_by("scope", "target_id", "pk")


# --- feedback (POST /v1/feedback) ------------------------------------------------------------------------------


def call_of_team(*, team_id: int, request_id: str) -> UsageRecord | None:
    """The team's own call by its request id; None for an unknown id and for another team's alike."""
    return UsageRecord.objects.filter(team_id=team_id, request_id=request_id).first()
