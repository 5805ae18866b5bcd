"""Budget burn-down: spend so far in the current period, its curve, and a straight-line forecast to the period's end.

Spend so far comes from the budget's counter (kept current by the ledger) when the period has one, else from
the aggregates; the curve always comes from the aggregates, which lag the counter by up to one aggregation run.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing.dashboards.scope import Filters
from billing.models import Budget, BudgetCounter, UsageAggregate
from portal.models import APIKey, Subscription, Team

ZERO = Decimal(0)
TARGET_FIELD = {
    Budget.Scope.TENANT: "tenant_id",
    Budget.Scope.TEAM: "team_id",
    Budget.Scope.KEY: "api_key_id",
    Budget.Scope.SUBSCRIPTION: "subscription_id",
}


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime]:
    """The UTC day or month containing `now`, as [start, end)."""
    now = now.astimezone(UTC)
    if period == Budget.Period.DAILY:
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start, start + timedelta(days=1)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def budgets_in_scope(filters: Filters):
    """Active budgets the user may see: a tenant's for tenant-wide viewers, a team's (and its keys' and
    subscriptions') for whoever sees the team."""
    scope = filters.scope
    budgets = Budget.objects.filter(is_active=True).select_related("tenant")
    if filters.tenant is not None:
        budgets = budgets.filter(tenant=filters.tenant)
    if filters.team is not None:
        team_ids = {filters.team.pk}
        budgets = budgets.exclude(scope=Budget.Scope.TENANT)
    elif scope.everything:
        return budgets.order_by("tenant__name", "scope", "target_id")
    else:
        team_ids = set(scope.team_ids)
    keys = APIKey.objects.filter(team_id__in=team_ids).values("pk")
    subscriptions = Subscription.objects.filter(team_id__in=team_ids).values("pk")
    of_teams = (
        Q(scope=Budget.Scope.TEAM, target_id__in=team_ids)
        | Q(scope=Budget.Scope.KEY, target_id__in=keys)
        | Q(scope=Budget.Scope.SUBSCRIPTION, target_id__in=subscriptions)
    )
    if filters.team is None and not scope.everything:
        of_teams |= Q(tenant_id__in=scope.tenant_ids)
    return budgets.filter(of_teams).order_by("tenant__name", "scope", "target_id")


@dataclass
class BurnDown:
    budget: Budget
    unit: str  # "usd" | "tokens"
    limit: Decimal
    period_start: datetime
    period_end: datetime
    now: datetime
    spent: Decimal
    times: list[datetime] = field(default_factory=list)  # end of each bucket with usage
    cumulative: list[Decimal] = field(default_factory=list)

    @property
    def elapsed_fraction(self) -> float:
        return (self.now - self.period_start) / (self.period_end - self.period_start)

    @property
    def forecast(self) -> Decimal:
        """Spend at the period's end if the period's average rate so far continues."""
        elapsed = (self.now - self.period_start).total_seconds()
        if elapsed <= 0:
            return self.spent
        total = (self.period_end - self.period_start).total_seconds()
        return (self.spent * Decimal(total) / Decimal(elapsed)).quantize(Decimal("1e-10"))

    @property
    def runs_out_at(self) -> datetime | None:
        """When the limit is reached at that rate, if before the period ends."""
        if not self.limit or self.spent <= 0 or self.forecast <= self.limit:
            return None
        if self.spent >= self.limit:
            return self.now
        elapsed_s = (self.now - self.period_start).total_seconds()
        seconds_left = float((self.limit - self.spent) / self.spent) * elapsed_s
        return self.now + timedelta(seconds=seconds_left)

    @property
    def used_percent(self) -> float | None:
        return float(self.spent / self.limit * 100) if self.limit else None


def _counter_spend(budget: Budget, period_start: datetime, unit: str) -> Decimal | None:
    counter = BudgetCounter.objects.filter(budget=budget, period_start=period_start).first()
    if counter is None:
        return None
    return counter.spent_usd if unit == "usd" else Decimal(counter.spent_tokens)


def burn_down(budget: Budget, *, now: datetime | None = None) -> BurnDown:
    now = now or timezone.now()
    start, end = period_bounds(budget.period, now)
    unit = "usd" if budget.limit_usd is not None else "tokens"
    limit = budget.limit_usd if unit == "usd" else Decimal(budget.limit_tokens or 0)
    granularity = UsageAggregate.Granularity.HOUR if budget.period == Budget.Period.DAILY else "day"
    measure = Sum("cost_usd") if unit == "usd" else Sum("prompt_tokens") + Sum("completion_tokens")
    rows = (
        UsageAggregate.objects.filter(
            granularity=granularity,
            bucket_start__gte=start,
            bucket_start__lt=end,
            **{TARGET_FIELD[budget.scope]: budget.target_id},
        )
        .values("bucket_start")
        .annotate(amount=Coalesce(measure, ZERO) if unit == "usd" else Coalesce(measure, 0))
        .order_by("bucket_start")
    )
    step = timedelta(hours=1) if granularity == UsageAggregate.Granularity.HOUR else timedelta(days=1)
    times, cumulative, running = [start], [ZERO], ZERO
    for row in rows:
        running += Decimal(row["amount"] or 0)
        times.append(min(row["bucket_start"] + step, now))
        cumulative.append(running)
    counted = _counter_spend(budget, start, unit)
    return BurnDown(
        budget=budget,
        unit=unit,
        limit=limit,
        period_start=start,
        period_end=end,
        now=now,
        spent=counted if counted is not None else running,
        times=times,
        cumulative=cumulative,
    )


def budget_label(budget: Budget) -> str:
    names = {
        Budget.Scope.TENANT: lambda: budget.tenant.name,
        Budget.Scope.TEAM: lambda: _name(budget, "team"),
        Budget.Scope.KEY: lambda: _name(budget, "key"),
        Budget.Scope.SUBSCRIPTION: lambda: _name(budget, "subscription"),
    }
    return f"{budget.get_scope_display()} {names[budget.scope]()} · {budget.get_period_display().lower()}"


def _name(budget: Budget, kind: str) -> str:
    if kind == "team":
        team = Team.objects.filter(pk=budget.target_id).first()
        return team.name if team else f"#{budget.target_id}"
    if kind == "key":
        key = APIKey.objects.filter(pk=budget.target_id).first()
        return f"{key.prefix}…" if key else f"#{budget.target_id}"
    subscription = Subscription.objects.select_related("product", "team").filter(pk=budget.target_id).first()
    return f"{subscription.team.name} → {subscription.product.name}" if subscription else f"#{budget.target_id}"
