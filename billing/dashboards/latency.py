"""Latency and TTFB percentiles over many aggregate rows, from their mergeable histograms.

Percentiles don't add up (the p95 of two days is not the mean of their p95s), but histograms do: each row keeps
{bin: count} over fixed log-spaced bins (billing/aggregation.py). The database adds them up per bucket and
deployment, so Python only sees one small histogram per (bucket, deployment), whatever the number of rows.
"""

from collections import Counter, defaultdict
from datetime import UTC, datetime

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import QuerySet

from billing.aggregation import percentile_from_histogram

LATENCY = {"latency_p50_ms": 0.5, "latency_p95_ms": 0.95, "latency_p99_ms": 0.99}
TTFB = {"ttfb_p50_ms": 0.5, "ttfb_p95_ms": 0.95}
MEASURES = {"latency": LATENCY, "ttfb": TTFB}

Histograms = dict[tuple[datetime, str], dict[str, Counter]]  # (bucket, deployment) -> kind -> {bin: count}


def _moment(value) -> datetime:
    # Raw SQL on SQLite returns timestamps as text (stored in UTC); PostgreSQL returns aware datetimes.
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def histograms_by_bucket(rows: QuerySet) -> Histograms:
    """Merged latency and TTFB histograms of the given aggregate rows, per bucket and deployment."""
    columns = rows.values("bucket_start", "deployment", "latency_histogram", "ttfb_histogram")
    try:
        inner, params = columns.query.sql_with_params()
    except EmptyResultSet:  # a user who sees nothing: Django knows the query can match no row
        return {}
    each = "jsonb_each_text" if connection.vendor == "postgresql" else "json_each"
    selects = [
        f"SELECT r.bucket_start, r.deployment, '{kind}', e.key, SUM(CAST(e.value AS bigint)) "  # noqa: S608 (constants)
        f"FROM ({inner}) AS r, {each}(r.{kind}_histogram) AS e GROUP BY r.bucket_start, r.deployment, e.key"
        for kind in MEASURES
    ]
    merged: Histograms = defaultdict(lambda: {kind: Counter() for kind in MEASURES})
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(selects), [*params, *params])
        for bucket, deployment, kind, histogram_bin, count in cursor.fetchall():
            merged[(_moment(bucket), deployment or "")][kind][histogram_bin] += int(count)
    return dict(merged)


def percentiles(histograms: dict[str, Counter]) -> dict[str, float | None]:
    result = {}
    for kind, fractions in MEASURES.items():
        histogram = histograms.get(kind) or {}
        for name, fraction in fractions.items():
            value = percentile_from_histogram(histogram, fraction)
            result[name] = None if value is None else round(value, 1)
    return result


def per_deployment(histograms: Histograms) -> dict[str, dict[str, float | None]]:
    """Deployment -> its percentiles over every bucket."""
    totals: dict[str, dict[str, Counter]] = defaultdict(lambda: {kind: Counter() for kind in MEASURES})
    for (_, deployment), by_kind in histograms.items():
        for kind, histogram in by_kind.items():
            totals[deployment][kind].update(histogram)
    return {deployment: percentiles(by_kind) for deployment, by_kind in totals.items()}
