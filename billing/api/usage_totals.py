"""The totals behind the usage summary: aggregates over a range, grouped by team, key, alias, deployment,
provider, routing strategy, endpoint, prompt, prompt version or day, seen through the same scope as the
console (portal/roles.py). Reads aggregates only.

Whole days inside the range are read from daily rows and the partial days at its ends from hourly rows, so a
30-day summary reads a few rows per day. Latency percentiles come from the rows' merged histograms
(billing/aggregation.py: within HISTOGRAM_RELATIVE_ERROR of the exact value).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Q, QuerySet

from billing.aggregation import merge_histograms, percentile_from_histogram
from billing.dashboards.scope import scope_of
from billing.models import UsageAggregate
from portal.models import Tenant

# group_by -> the columns that name a group; the first is what rows are grouped on (a renamed team stays one
# row, under its latest name; rows without the id, e.g. a team deleted before aggregation, group by name).
GROUPS = {
    "team": ("team_id", "team_name"),
    "key": ("api_key_id", "key_prefix"),
    "alias": ("alias",),
    "deployment": ("deployment",),
    "provider": ("provider",),
    "strategy": ("strategy",),  # the alias's routing policy: what each one saved against the baseline
    "endpoint": ("endpoint",),  # the API called: chat.completions, messages, responses, embeddings...
    "prompt": ("prompt",),  # the prompt template's slug; "" for calls that used none
    "prompt_version": ("prompt", "prompt_version"),  # one row per version of each prompt
    "day": ("day",),
}
# Groups named by all their columns together (no id that stands for the rest).
COMPOSITE_GROUPS = frozenset({"prompt_version"})
MEASURES = (
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost_usd",
    "baseline_cost_usd",
    "saved_usd",
    "latency_p50_ms",
    "latency_p95_ms",
)
MONEY_PLACES = Decimal("1e-10")


@dataclass(frozen=True)
class SummaryRange:
    since: datetime  # on the hour, inclusive
    until: datetime  # on the hour, exclusive


def visible_aggregates(*, user, tenant: Tenant | None = None) -> QuerySet[UsageAggregate]:
    """Aggregate rows the user may read: the dashboards' scope (platform admins all; tenant admins and finance
    their tenants' rows; everyone else the rows of their own teams)."""
    rows = UsageAggregate.objects.filter(scope_of(user).q())
    if tenant is not None:
        rows = rows.filter(tenant_id=tenant.pk)
    return rows


def rows_in_range(rows: QuerySet[UsageAggregate], span: SummaryRange) -> QuerySet[UsageAggregate]:
    first_day = _ceil_day(span.since)
    last_day = span.until.replace(hour=0)
    if first_day >= last_day:
        return rows.filter(granularity="hour", bucket_start__gte=span.since, bucket_start__lt=span.until)
    days = Q(granularity="day", bucket_start__gte=first_day, bucket_start__lt=last_day)
    head = Q(granularity="hour", bucket_start__gte=span.since, bucket_start__lt=first_day)
    tail = Q(granularity="hour", bucket_start__gte=last_day, bucket_start__lt=span.until)
    return rows.filter(days | head | tail)


def usage_summary(*, user, group_by: str, span: SummaryRange, tenant: Tenant | None = None) -> list[dict]:
    """One dict per group: its naming columns then MEASURES; money as Decimal. Costliest first (days in order)."""
    columns = GROUPS[group_by]
    rows = rows_in_range(visible_aggregates(user=user, tenant=tenant), span).order_by("bucket_start")
    fields = [c for c in columns if c != "day"]
    groups: dict = {}
    for row in rows.values(
        "bucket_start", *fields, "requests", "prompt_tokens", "completion_tokens", "cost_usd", "baseline_cost_usd",
        "latency_histogram",
    ):  # fmt: skip
        if group_by == "day":
            day = row["bucket_start"].date().isoformat()
            key, naming = day, {"day": day}
        else:
            naming = {c: row[c] for c in columns}
            if group_by in COMPOSITE_GROUPS:
                key = tuple(naming.values())
            else:
                key = row[columns[0]] if row[columns[0]] is not None else ("name", row[columns[-1]])
        group = groups.setdefault(key, {"requests": 0, "prompt": 0, "completion": 0, "cost": Decimal(0),
                                        "baseline": Decimal(0), "histograms": []})  # fmt: skip
        group["naming"] = naming  # rows come oldest first: the latest name wins
        group["requests"] += row["requests"]
        group["prompt"] += row["prompt_tokens"]
        group["completion"] += row["completion_tokens"]
        group["cost"] += row["cost_usd"]
        group["baseline"] += row["baseline_cost_usd"]
        group["histograms"].append(row["latency_histogram"])
    summary = [_summary_row(group) for group in groups.values()]
    if group_by == "day":
        return sorted(summary, key=lambda r: r["day"])
    return sorted(summary, key=lambda r: (-r["cost_usd"], -r["requests"], str(r[columns[-1]])))


def _summary_row(group: dict) -> dict:
    latency = merge_histograms(group["histograms"])
    cost, baseline = group["cost"].quantize(MONEY_PLACES), group["baseline"].quantize(MONEY_PLACES)
    return {
        **group["naming"],
        "requests": group["requests"],
        "prompt_tokens": group["prompt"],
        "completion_tokens": group["completion"],
        "total_tokens": group["prompt"] + group["completion"],
        "cost_usd": cost,
        "baseline_cost_usd": baseline,
        "saved_usd": baseline - cost,
        "latency_p50_ms": percentile_from_histogram(latency, 0.5),
        "latency_p95_ms": percentile_from_histogram(latency, 0.95),
    }


def _ceil_day(moment: datetime) -> datetime:
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if day == moment else day + timedelta(days=1)
