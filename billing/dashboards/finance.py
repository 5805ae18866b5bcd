"""Reads behind the finance dashboard: cost over time, top keys and teams, savings. Aggregates only.

Money stays Decimal here; only billing/dashboards/figures.py turns it into floats for plotly.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import QuerySet, Sum
from django.db.models.functions import Coalesce

from billing.dashboards import model_names
from billing.dashboards.scope import Filters
from billing.models import UsageAggregate

ZERO = Decimal(0)
# What the cost chart can be stacked by, and the columns that name a series ("model": model_names.shown_model).
STACKS = {"team": ("team_id", "tenant_name", "team_name"), "alias": ("model",), "provider": ("provider",)}
TOP_N = 10

MEASURES = {
    "requests": Coalesce(Sum("requests"), 0),
    "errors": Coalesce(Sum("errors"), 0),
    "prompt_tokens": Coalesce(Sum("prompt_tokens"), 0),
    "completion_tokens": Coalesce(Sum("completion_tokens"), 0),
    "cost_usd": Coalesce(Sum("cost_usd"), ZERO),
    "baseline_cost_usd": Coalesce(Sum("baseline_cost_usd"), ZERO),
}


def aggregate_rows(filters: Filters) -> QuerySet[UsageAggregate]:
    """The aggregate rows a dashboard reads: one granularity, the range, the scope and the filters."""
    return UsageAggregate.objects.filter(
        filters.q(),
        granularity=filters.granularity,
        bucket_start__gte=filters.since,
        bucket_start__lt=filters.until,
    )


def cost_per_1k_requests(cost: Decimal, requests: int) -> Decimal | None:
    if not requests:
        return None
    return (cost * 1000 / requests).quantize(Decimal("1e-6"))


@dataclass
class Totals:
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal
    baseline_cost_usd: Decimal

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def saved_usd(self) -> Decimal:
        # The baseline is what the alias's baseline deployment would have charged (its own cost when the alias
        # has none). Routing to a dearer deployment makes this negative, and it is shown as such.
        return self.baseline_cost_usd - self.cost_usd

    @property
    def cost_per_1k_requests(self) -> Decimal | None:
        return cost_per_1k_requests(self.cost_usd, self.requests)


def totals(filters: Filters) -> Totals:
    return Totals(**aggregate_rows(filters).aggregate(**MEASURES))


def series_label(row: dict, stack: str, *, show_tenant: bool) -> str:
    if stack == "team":
        name = row["team_name"] or "(no team)"
        return f"{row['tenant_name']} / {name}" if show_tenant and row["tenant_name"] else name
    if stack == "alias":
        return model_names.label(row["model"])
    return row[STACKS[stack][0]] or "(none)"


@dataclass
class CostOverTime:
    buckets: list[datetime]
    series: dict[str, list[Decimal]]  # label -> cost per bucket, largest total first
    saved: list[Decimal]  # baseline - cost per bucket, over every series


def cost_over_time(filters: Filters, *, stack: str) -> CostOverTime:
    show_tenant = filters.tenant is None and (filters.scope.everything or len(filters.scope.tenant_ids) > 1)
    rows = aggregate_rows(filters)
    if stack == "alias":
        rows = rows.annotate(model=model_names.shown_model())
    rows = (
        rows.values("bucket_start", *STACKS[stack])
        .annotate(cost=Sum("cost_usd"), baseline=Sum("baseline_cost_usd"))
        .order_by("bucket_start")
    )
    buckets: list[datetime] = []
    by_label: dict[str, dict[datetime, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    saved: dict[datetime, Decimal] = defaultdict(Decimal)
    for row in rows:
        bucket = row["bucket_start"]
        if not buckets or buckets[-1] != bucket:
            buckets.append(bucket)
        by_label[series_label(row, stack, show_tenant=show_tenant)][bucket] += row["cost"] or ZERO
        saved[bucket] += (row["baseline"] or ZERO) - (row["cost"] or ZERO)
    ordered = sorted(by_label.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    return CostOverTime(
        buckets=buckets,
        series={label: [costs.get(bucket, ZERO) for bucket in buckets] for label, costs in ordered},
        saved=[saved.get(bucket, ZERO) for bucket in buckets],
    )


def _ranked(rows: QuerySet, n: int | None) -> list[dict]:
    rows = rows.annotate(**MEASURES).order_by("-cost_usd", "-requests")
    result = []
    for row in rows[:n] if n else rows:
        totals = Totals(**{key: row[key] for key in MEASURES})
        result.append(
            row
            | {
                "tokens": totals.tokens,
                "saved_usd": totals.saved_usd,
                "cost_per_1k_requests": totals.cost_per_1k_requests,
            }
        )
    return result


def top_teams(filters: Filters, *, n: int | None = TOP_N) -> list[dict]:
    return _ranked(aggregate_rows(filters).values("team_id", "tenant_name", "team_name"), n)


def top_keys(filters: Filters, *, n: int | None = TOP_N) -> list[dict]:
    return _ranked(aggregate_rows(filters).values("api_key_id", "key_prefix", "tenant_name", "team_name"), n)


def top_aliases(filters: Filters, *, n: int | None = TOP_N) -> list[dict]:
    """Per model shown (model_names): "alias" is "" for the one unknown-model row; "model" is its label."""
    rows = aggregate_rows(filters).annotate(alias_shown=model_names.shown_model()).values("alias_shown")
    return [
        row | {"alias": row["alias_shown"], "model": model_names.label(row["alias_shown"])} for row in _ranked(rows, n)
    ]


def usage_by_endpoint(filters: Filters) -> list[dict]:
    """One row per API called (chat.completions, messages, responses, embeddings...), costliest first;
    `endpoint` is "" for hours aggregated before the aggregates had the dimension (until reaggregate_usage)."""
    return _ranked(aggregate_rows(filters).values("endpoint"), None)


def top_prompts(filters: Filters, *, n: int | None = TOP_N) -> list[dict]:
    """Prompt calls (/v1/prompts) per prompt and version, costliest first; "prompt_label" is slug@version."""
    rows = aggregate_rows(filters).exclude(prompt="").values("prompt", "prompt_version")
    return [row | {"prompt_label": f"{row['prompt']}@{row['prompt_version']}"} for row in _ranked(rows, n)]


NO_STRATEGY = "(not routed)"  # refused before routing (auth, limits, bad input): no strategy was applied


def savings_by_strategy(filters: Filters) -> list[dict]:
    """What each routing policy cost against the baseline: one row per strategy, largest saving first.
    `percent_saved` is saved ÷ baseline × 100 (a Decimal to one place), None when the baseline is zero."""
    rows = []
    for row in _ranked(aggregate_rows(filters).values("strategy"), None):
        baseline = row["baseline_cost_usd"]
        percent = (row["saved_usd"] * 100 / baseline).quantize(Decimal("0.1")) if baseline else None
        rows.append(row | {"strategy_label": row["strategy"] or NO_STRATEGY, "percent_saved": percent})
    return sorted(rows, key=lambda row: (-row["saved_usd"], -row["requests"], row["strategy"]))


def aliases_in_scope(filters: Filters) -> list[tuple[str, str]]:
    """The model filter's (value, label) choices: aliases with usage in scope over the range (ignoring the alias
    filter), then the unknown-model entry if any usage falls under it."""
    unfiltered = Filters(scope=filters.scope, since=filters.since, until=filters.until, tenant=filters.tenant)
    shown = aggregate_rows(unfiltered).annotate(model=model_names.shown_model())
    models = set(shown.values_list("model", flat=True).distinct().order_by())
    choices = [(alias, alias) for alias in sorted(models - {""})]
    if "" in models:
        choices.append((model_names.UNKNOWN_MODEL_PARAM, model_names.UNKNOWN_MODEL))
    return choices
