"""Reads behind the operator dashboard: throughput, errors, fallbacks, retries, cache hits and latency per
deployment, from aggregates only."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing.aggregation import merge_histograms, percentile_from_histogram
from billing.dashboards import latency
from billing.dashboards.finance import aggregate_rows
from billing.dashboards.scope import Filters

ERROR_KIND = "error_type"  # the gateway's own error type (core/errors.py), e.g. rate_limit_exceeded

# Annotations that read the "requests" column come before the one named "requests", which shadows it.
TRAFFIC = {
    "cache_hits": Coalesce(Sum("requests", filter=Q(cache_hit=True)), 0),
    "requests": Coalesce(Sum("requests"), 0),
    "errors": Coalesce(Sum("errors"), 0),
    "fallbacks": Coalesce(Sum("fallbacks"), 0),
    "retries": Coalesce(Sum("retries"), 0),
    "prompt_tokens": Coalesce(Sum("prompt_tokens"), 0),
    "completion_tokens": Coalesce(Sum("completion_tokens"), 0),
}


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass
class TrafficPoint:
    bucket_start: datetime
    seconds: float  # how much of the bucket has elapsed: the current hour or day is not over yet
    requests: int
    errors: int
    fallbacks: int
    retries: int
    cache_hits: int
    prompt_tokens: int
    completion_tokens: int

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds

    @property
    def tokens_per_s(self) -> float:
        return (self.prompt_tokens + self.completion_tokens) / self.seconds

    @property
    def error_rate(self) -> float | None:
        return _ratio(self.errors, self.requests)

    @property
    def fallback_rate(self) -> float | None:
        return _ratio(self.fallbacks, self.requests)

    @property
    def retry_rate(self) -> float | None:
        """Retries per request: 0.1 means one extra attempt every ten requests."""
        return _ratio(self.retries, self.requests)

    @property
    def cache_hit_rate(self) -> float | None:
        return _ratio(self.cache_hits, self.requests)


def traffic_over_time(filters: Filters, *, now: datetime | None = None) -> list[TrafficPoint]:
    now = now or timezone.now()
    step = timedelta(seconds=filters.bucket_seconds)
    rows = aggregate_rows(filters).values("bucket_start").annotate(**TRAFFIC).order_by("bucket_start")
    points = []
    for row in rows:
        bucket = row.pop("bucket_start")
        elapsed = min(bucket + step, max(now, bucket + timedelta(seconds=1))) - bucket
        points.append(TrafficPoint(bucket_start=bucket, seconds=elapsed.total_seconds(), **row))
    return points


def traffic_totals(points: list[TrafficPoint]) -> TrafficPoint | None:
    if not points:
        return None
    fields = ("requests", "errors", "fallbacks", "retries", "cache_hits", "prompt_tokens", "completion_tokens")
    sums = {name: sum(getattr(point, name) for point in points) for name in fields}
    return TrafficPoint(bucket_start=points[0].bucket_start, seconds=sum(p.seconds for p in points), **sums)


@dataclass
class ErrorsByType:
    buckets: list[datetime]
    requests: list[int]
    series: dict[str, list[int]]  # error type -> failed requests per bucket, commonest first


def errors_by_type(filters: Filters) -> ErrorsByType:
    rows = (
        aggregate_rows(filters)
        .values("bucket_start", ERROR_KIND)
        .annotate(requests=Coalesce(Sum("requests"), 0), errors=Coalesce(Sum("errors"), 0))
    )
    requests: dict[datetime, int] = defaultdict(int)
    by_type: dict[str, dict[datetime, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows.order_by("bucket_start"):
        requests[row["bucket_start"]] += row["requests"]
        if row["errors"]:
            by_type[row[ERROR_KIND] or "unknown"][row["bucket_start"]] += row["errors"]
    buckets = sorted(requests)
    ordered = sorted(by_type.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    return ErrorsByType(
        buckets=buckets,
        requests=[requests[bucket] for bucket in buckets],
        series={kind: [counts.get(bucket, 0) for bucket in buckets] for kind, counts in ordered},
    )


def latency_by_deployment(filters: Filters) -> list[dict]:
    """One row per deployment over the whole range: requests, errors, latency and TTFB percentiles."""
    rows = (
        aggregate_rows(filters)
        .values("deployment", "provider")
        .annotate(
            requests=Coalesce(Sum("requests"), 0),
            errors=Coalesce(Sum("errors"), 0),
            fallbacks=Coalesce(Sum("fallbacks"), 0),
            retries=Coalesce(Sum("retries"), 0),
        )
        .order_by("-requests", "deployment")
    )
    merged = latency.per_deployment(latency.histograms_by_bucket(aggregate_rows(filters)))
    empty = latency.percentiles({})
    return [
        row | merged.get(row["deployment"] or "", empty) | {"error_rate": _ratio(row["errors"], row["requests"])}
        for row in rows
    ]


def latency_over_time(filters: Filters) -> dict[str, dict[datetime, dict]]:
    """Deployment -> bucket -> its latency and TTFB percentiles (and requests, to rank the busiest)."""
    histograms = latency.histograms_by_bucket(aggregate_rows(filters))
    series: dict[str, dict[datetime, dict]] = defaultdict(dict)
    for (bucket, deployment), by_kind in sorted(histograms.items()):
        requests = sum(by_kind["latency"].values())
        series[deployment or "(none)"][bucket] = latency.percentiles(by_kind) | {"requests": requests}
    return dict(series)


def by_prompt_version(filters: Filters) -> list[dict]:
    """One row per prompt and version (/v1/prompts calls only) over the range: requests, errors and latency
    percentiles from the rows' merged histograms. Busiest first."""
    groups: dict[tuple[str, int | None], dict] = {}
    rows = aggregate_rows(filters).exclude(prompt="")
    for row in rows.values("prompt", "prompt_version", "requests", "errors", "latency_histogram"):
        group = groups.setdefault(
            (row["prompt"], row["prompt_version"]), {"requests": 0, "errors": 0, "histograms": []}
        )
        group["requests"] += row["requests"]
        group["errors"] += row["errors"]
        group["histograms"].append(row["latency_histogram"])
    result = []
    for (prompt, version), group in groups.items():
        merged = merge_histograms(group["histograms"])
        result.append(
            {
                "prompt": prompt,
                "prompt_version": version,
                "prompt_label": f"{prompt}@{version}",
                "requests": group["requests"],
                "errors": group["errors"],
                "error_rate": _ratio(group["errors"], group["requests"]),
                "latency_p50_ms": percentile_from_histogram(merged, 0.5),
                "latency_p95_ms": percentile_from_histogram(merged, 0.95),
            }
        )
    return sorted(result, key=lambda r: (-r["requests"], r["prompt"], r["prompt_version"] or 0))
