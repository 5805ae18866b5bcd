"""Budget burn-down: spend so far in the current period, its curve, and a straight-line forecast to the period's end.

Spend and its curve are one reading of billing.budgets.spend_per_bucket, the definition of spend that the REST
API and the ledger use too: the curve's last point is the card's figure. It counts the whole period, spend from
before the budget was created included.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Q
from django.utils import timezone

from billing import budgets as budget_rules
from billing.dashboards.scope import Filters
from billing.models import Budget
from portal.models import APIKey, Subscription, Team

ZERO = Decimal(0)


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
    reserved: Decimal = ZERO  # held by calls still running (the ledger's counter), not part of `spent`

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


def burn_down(budget: Budget, *, now: datetime | None = None) -> BurnDown:
    now = now or timezone.now()
    start, end = budget_rules.current_period(budget, now=now.timestamp())
    unit = "usd" if budget.limit_usd is not None else "tokens"
    limit = budget.limit_usd if unit == "usd" else Decimal(budget.limit_tokens or 0)
    step = timedelta(hours=1) if budget.period == Budget.Period.DAILY else timedelta(days=1)
    times, cumulative, running = [start], [ZERO], ZERO
    for bucket, usd, tokens in budget_rules.spend_per_bucket(budget, start, end):
        running += usd if unit == "usd" else Decimal(tokens)
        times.append(min(bucket + step, now))
        cumulative.append(running)
    in_flight = budget_rules.current_spend(budget)
    reserved = in_flight["reserved_usd"] if unit == "usd" else Decimal(in_flight["reserved_tokens"])
    return BurnDown(
        budget=budget,
        unit=unit,
        limit=limit,
        period_start=start,
        period_end=end,
        now=now,
        spent=running,
        times=times,
        cumulative=cumulative,
        reserved=reserved if in_flight["period_start"] == start else ZERO,
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
