"""The monthly chargeback report: what each team spent in one calendar month (UTC), from daily aggregates."""

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from billing.dashboards.finance import MEASURES, Totals
from billing.dashboards.scope import Filters
from billing.models import UsageAggregate


def month_bounds(month: date) -> tuple[datetime, datetime]:
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    end = datetime(month.year + 1, 1, 1, tzinfo=UTC) if month.month == 12 else start.replace(month=month.month + 1)
    return start, end


def parse_month(raw: str | None, *, default: date) -> date:
    """'2026-11' -> date(2026, 11, 1); anything else -> the default month."""
    try:
        year, month = (int(part) for part in (raw or "").split("-"))
        return date(year, month, 1)
    except ValueError:
        return default.replace(day=1)


@dataclass
class Chargeback:
    month: date
    rows: list[dict]  # one per team, dearest first
    total: Totals


def chargeback(filters: Filters, *, month: date) -> Chargeback:
    """Per team. The alias filter and date range don't apply: a chargeback is the whole month's bill."""
    start, end = month_bounds(month)
    rows = UsageAggregate.objects.filter(
        filters.scope.q(), granularity=UsageAggregate.Granularity.DAY, bucket_start__gte=start, bucket_start__lt=end
    )
    if filters.tenant is not None:
        rows = rows.filter(tenant_id=filters.tenant.pk)
    if filters.team is not None:
        rows = rows.filter(team_id=filters.team.pk)
    per_team = []
    for row in (
        rows.values("tenant_id", "tenant_name", "team_id", "team_name")
        .annotate(**MEASURES)
        .order_by("-cost_usd", "tenant_name", "team_name")
    ):
        totals = Totals(**{key: row[key] for key in MEASURES})
        per_team.append(row | {"tokens": totals.tokens, "saved_usd": totals.saved_usd})
    total = Totals(
        **{key: sum((row[key] for row in per_team), Decimal(0) if key.endswith("usd") else 0) for key in MEASURES}
    )
    return Chargeback(month=month, rows=per_team, total=total)
