"""Usage records rolled up into hourly and daily UsageAggregate rows.

How a run works (`aggregate_pending`, every TOLLWAY_AGGREGATE_EVERY_S on Celery beat):

1. Find the hours that have records stored since the **cursor**, and keep those whose AggregatedBucket is
   missing or older than their newest record. The cursor is a lower bound on `stored_at` below which every
   record is folded in; it lives in an AggregatedBucket row of its own (granularity "scan").
2. Recompute each of those hours whole from its raw records (`aggregate_bucket`): lock the bucket's row,
   delete its aggregate rows and insert the new ones, in one transaction. The recompute counts the records
   stored before `computed_at` = (lock time - TOLLWAY_AGGREGATE_SETTLE_S) and no others, so its three queries
   agree with each other and a record stored later is "newer than computed_at" and recomputed next time.
3. Recompute every day that has an hour computed after it, from that day's hourly rows (not raw records:
   cheap, and still right after retention has purged the raw records of its older hours).
4. Move the cursor to (scan time - settle) only now: a run that dies half-way leaves the cursor where it was,
   so the next run finds the same hours again. Concurrent runs are safe: buckets are locked, a bucket
   recomputed after the newest record a run saw is skipped, and the cursor only moves forwards.

Why the settle delay: `stored_at` is stamped by the gateway before its insert commits, on its own clock. A
record stamped before (now - settle) is assumed committed and visible; TOLLWAY_AGGREGATE_SETTLE_S must exceed
insert duration plus clock skew between hosts.

Percentiles: an hourly row's latency/TTFB percentiles are exact (linear interpolation, as PostgreSQL's
`percentile_cont`, which computes them there; SQLite gets the same formula in Python). Every row also keeps a
histogram over fixed log-spaced bins (HISTOGRAM_RATIO wide), which can be merged across rows: daily rows, the
usage summary and the dashboards estimate percentiles from merged histograms, within HISTOGRAM_RELATIVE_ERROR
of the exact value for latencies from 0.1 ms to ~3 h (below 0.1 ms, within 0.01 ms).

Money: PostgreSQL sums `numeric` exactly. SQLite stores decimals as floating point, so its sums are exact to
the 10th decimal place only while a row's total stays below ~$100,000; the embedded default is for trials.
"""

import logging
import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Aggregate, Case, Count, F, FloatField, Max, Q, Sum, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce, Floor, Greatest, Least, Left, Ln, TruncDay, TruncHour
from django.utils import timezone

from billing.models import AggregatedBucket, UsageAggregate, UsageRecord

log = logging.getLogger(__name__)

HOUR_GRANULARITY, DAY_GRANULARITY = UsageAggregate.Granularity.HOUR, UsageAggregate.Granularity.DAY
# The AggregatedBucket row that holds the cursor (its computed_at); not a bucket of aggregates.
CURSOR_GRANULARITY = "scan"
CURSOR_START = datetime(1970, 1, 1, tzinfo=UTC)

DIMENSIONS = (
    "tenant_id",
    "team_id",
    "api_key_id",
    "subscription_id",
    "tenant_name",
    "team_name",
    "key_prefix",
    "alias",
    "deployment",
    "provider",
    "prompt",
    "prompt_version",
    "status_class",
    "cache_hit",
    "error_type",
    "strategy",
    "experiment",
    "experiment_arm",
    "endpoint",
)
COUNTS = ("requests", "errors", "streams", "fallbacks", "retries", "prompt_tokens", "completion_tokens")
MONEY = ("cost_usd", "baseline_cost_usd")
SUMMED = (*COUNTS, "cached_tokens", *MONEY, "latency_ms_sum")

# --- Histograms -------------------------------------------------------------------------------------------------
# Bin k holds values in [LOW * RATIO**k, LOW * RATIO**(k+1)); bin 0 also holds everything below LOW and the last
# bin everything above. Eight bins per doubling: the geometric middle of a bin is within 4.4% of any value in it.
HISTOGRAM_LOW_MS = 0.1
HISTOGRAM_RATIO = 2 ** (1 / 8)
HISTOGRAM_LAST_BIN = 213  # LOW * RATIO**214 is about 10**7 ms, close to three hours
HISTOGRAM_RELATIVE_ERROR = math.sqrt(HISTOGRAM_RATIO) - 1


def histogram_bin(value_ms: float) -> int:
    """The bin of one value, as the SQL expression `_bin_of` computes it in the database."""
    if value_ms <= HISTOGRAM_LOW_MS:
        return 0
    return min(int(math.floor(math.log(value_ms / HISTOGRAM_LOW_MS) / math.log(HISTOGRAM_RATIO))), HISTOGRAM_LAST_BIN)


def _bin_of(field: str):
    ratio = Value(math.log(HISTOGRAM_RATIO), output_field=FloatField())
    scaled = Greatest(F(field), Value(HISTOGRAM_LOW_MS)) / Value(HISTOGRAM_LOW_MS)
    return Least(Floor(Ln(scaled, output_field=FloatField()) / ratio), Value(float(HISTOGRAM_LAST_BIN)))


def merge_histograms(histograms) -> dict[str, int]:
    """Add up stored histograms ({"bin": count}, keys are strings in JSON)."""
    total: Counter = Counter()
    for histogram in histograms:
        total.update(histogram or {})
    return {str(k): v for k, v in sorted(total.items(), key=lambda item: int(item[0])) if v}


def percentile_from_histogram(histogram: dict, fraction: float) -> float | None:
    """Estimate percentile_cont(fraction) from a histogram: each value is taken as the geometric middle of its
    bin, then the two values around the rank are interpolated as percentile_cont does. Off by at most
    HISTOGRAM_RELATIVE_ERROR (values from HISTOGRAM_LOW_MS up); None for an empty histogram."""
    bins = sorted((int(k), n) for k, n in (histogram or {}).items() if n)
    total = sum(n for _, n in bins)
    if not total:
        return None
    position = fraction * (total - 1)
    below, above = math.floor(position), math.ceil(position)
    low, high = _value_at(bins, below), _value_at(bins, above)
    return round(low + (high - low) * (position - below), 3)


def _value_at(bins: list[tuple[int, int]], index: int) -> float:
    seen = 0
    for bin_index, count in bins:
        seen += count
        if index < seen:
            if bin_index == 0:
                return HISTOGRAM_LOW_MS / 2
            return HISTOGRAM_LOW_MS * HISTOGRAM_RATIO ** (bin_index + 0.5)
    raise IndexError(index)


def exact_percentile(sorted_values: list[float], fraction: float) -> float | None:
    """percentile_cont(fraction) of already sorted values (the SQLite fallback of the hourly rows)."""
    if not sorted_values:
        return None
    position = fraction * (len(sorted_values) - 1)
    below, above = math.floor(position), math.ceil(position)
    low, high = sorted_values[below], sorted_values[above]
    return low + (high - low) * (position - below)


class PercentileCont(Aggregate):
    """PostgreSQL's ordered-set aggregate; NULLs are ignored."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: str, fraction: float) -> None:
        super().__init__(expression, fraction=repr(float(fraction)))


LATENCY_PERCENTILES = {"latency_p50_ms": 0.5, "latency_p95_ms": 0.95, "latency_p99_ms": 0.99}
TTFB_PERCENTILES = {"ttfb_p50_ms": 0.5, "ttfb_p95_ms": 0.95}

# --- Hourly rows from raw records -------------------------------------------------------------------------------

_STATUS_CLASS = Case(
    When(status__gte=500, then=Value("5xx")),
    When(status__gte=400, then=Value("4xx")),
    default=Value("2xx"),  # the gateway answers 2xx or an error; anything else below 400 counts as success
)
_MEASURES = {
    "requests": Count("id"),
    "errors": Count("id", filter=Q(status__gte=400)),
    "streams": Count("id", filter=Q(stream=True)),
    "fallbacks": Count("id", filter=Q(attempts__gt=1)),
    # attempts is 0 for requests refused before routing: only attempts beyond the first are retries.
    "retries": Sum(Case(When(attempts__gt=1, then=F("attempts") - 1), default=Value(0))),
    "prompt_tokens": Sum("prompt_tokens"),
    "completion_tokens": Sum("completion_tokens"),
    "cached_tokens": Sum("cached_tokens"),
    "cost_usd": Sum("cost_usd"),
    "baseline_cost_usd": Sum("baseline_cost_usd"),
    "latency_ms_sum": Sum("latency_ms"),
}


# The experiment and arm a call was given, out of its recorded decision (core.values.Decision.to_record), cut to
# the aggregate's columns; "" for calls routed before decisions named them, or with no experiment.
DECISION_EXPERIMENT = Coalesce(Left(KeyTextTransform("experiment", "decision"), 100), Value(""))
DECISION_ARM = Coalesce(Left(KeyTextTransform("arm", "decision"), 150), Value(""))


def _is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def _hour_rows(*, bucket_start: datetime, computed_at: datetime) -> tuple[list[UsageAggregate], int]:
    records = UsageRecord.objects.filter(
        created_at__gte=bucket_start, created_at__lt=bucket_start + timedelta(hours=1), stored_at__lt=computed_at
    ).annotate(status_class=_STATUS_CLASS, experiment=DECISION_EXPERIMENT, experiment_arm=DECISION_ARM)
    measures = dict(_MEASURES)
    if _is_postgresql():
        measures |= {name: PercentileCont("latency_ms", f) for name, f in LATENCY_PERCENTILES.items()}
        measures |= {name: PercentileCont("ttfb_ms", f) for name, f in TTFB_PERCENTILES.items()}
    groups = {_key(row): row for row in records.values(*DIMENSIONS).annotate(**measures)}
    if not groups:
        return [], 0
    histograms = {key: {"latency_ms": {}, "ttfb_ms": {}} for key in groups}
    for field in ("latency_ms", "ttfb_ms"):
        binned = records.filter(**{f"{field}__isnull": False}).annotate(bin=_bin_of(field))
        for row in binned.values(*DIMENSIONS, "bin").annotate(n=Count("id")):
            histograms[_key(row)][field][str(int(row["bin"]))] = row["n"]
    if not _is_postgresql():
        _add_exact_percentiles(records, groups)
    rows = []
    for key, row in groups.items():
        values = {name: row[name] or 0 for name in SUMMED}
        values |= {name: row[name] for name in (*LATENCY_PERCENTILES, *TTFB_PERCENTILES)}
        rows.append(
            UsageAggregate(
                granularity=HOUR_GRANULARITY,
                bucket_start=bucket_start,
                **dict(zip(DIMENSIONS, key, strict=True)),
                **values,
                latency_histogram=merge_histograms([histograms[key]["latency_ms"]]),
                ttfb_histogram=merge_histograms([histograms[key]["ttfb_ms"]]),
            )
        )
    return rows, sum(row["requests"] for row in groups.values())


def _add_exact_percentiles(records, groups: dict) -> None:
    """SQLite has no percentile_cont: sort each group's values here (embedded volumes only)."""
    values: dict[tuple, dict[str, list[float]]] = {key: {"latency_ms": [], "ttfb_ms": []} for key in groups}
    for row in records.values(*DIMENSIONS, "latency_ms", "ttfb_ms"):
        for field in ("latency_ms", "ttfb_ms"):
            if row[field] is not None:
                values[_key(row)][field].append(row[field])
    for key, row in groups.items():
        latency, ttfb = sorted(values[key]["latency_ms"]), sorted(values[key]["ttfb_ms"])
        row |= {name: exact_percentile(latency, f) for name, f in LATENCY_PERCENTILES.items()}
        row |= {name: exact_percentile(ttfb, f) for name, f in TTFB_PERCENTILES.items()}


def _key(row: dict) -> tuple:
    return tuple(row[name] for name in DIMENSIONS)


# --- Daily rows from hourly rows --------------------------------------------------------------------------------


def _day_rows(*, bucket_start: datetime) -> tuple[list[UsageAggregate], int]:
    hours = UsageAggregate.objects.filter(
        granularity=HOUR_GRANULARITY, bucket_start__gte=bucket_start, bucket_start__lt=bucket_start + timedelta(days=1)
    )
    groups: dict[tuple, dict] = {}
    for hour in hours.values(*DIMENSIONS, *SUMMED, "latency_histogram", "ttfb_histogram"):
        group = groups.setdefault(_key(hour), {"sums": dict.fromkeys(SUMMED, 0), "latency": [], "ttfb": []})
        for name in SUMMED:
            group["sums"][name] += hour[name]
        group["latency"].append(hour["latency_histogram"])
        group["ttfb"].append(hour["ttfb_histogram"])
    rows = []
    for key, group in groups.items():
        latency, ttfb = merge_histograms(group["latency"]), merge_histograms(group["ttfb"])
        sums = group["sums"] | {name: Decimal(group["sums"][name]) for name in MONEY}
        rows.append(
            UsageAggregate(
                granularity=DAY_GRANULARITY,
                bucket_start=bucket_start,
                **dict(zip(DIMENSIONS, key, strict=True)),
                **sums,
                **{name: percentile_from_histogram(latency, f) for name, f in LATENCY_PERCENTILES.items()},
                **{name: percentile_from_histogram(ttfb, f) for name, f in TTFB_PERCENTILES.items()},
                latency_histogram=latency,
                ttfb_histogram=ttfb,
            )
        )
    return rows, sum(group["sums"]["requests"] for group in groups.values())


# --- Recomputing one bucket ---------------------------------------------------------------------------------------


def aggregate_bucket(
    granularity: str,
    bucket_start: datetime,
    *,
    unless_computed_after: datetime | None = None,
    now: datetime | None = None,
) -> bool:
    """Recompute one hour (from raw records) or one day (from its hours) whole; False if skipped because the
    bucket was computed after `unless_computed_after` (another worker got there first). `now` is for tests and
    the benchmark; it defaults to the time the bucket's lock is granted."""
    if granularity not in (HOUR_GRANULARITY, DAY_GRANULARITY):
        raise ValueError(f"unknown granularity {granularity!r}")
    with transaction.atomic():
        bucket = _locked_bucket(granularity, bucket_start)
        if unless_computed_after is not None and bucket.computed_at and bucket.computed_at > unless_computed_after:
            return False
        if granularity == HOUR_GRANULARITY:
            settle = timedelta(seconds=settings.TOLLWAY_AGGREGATE_SETTLE_S)
            # Never backwards: records counted by an earlier run must stay counted (the cursor is past them).
            computed_at = max((now or timezone.now()) - settle, bucket.computed_at or CURSOR_START)
            rows, records = _hour_rows(bucket_start=bucket_start, computed_at=computed_at)
        else:
            # A day is as fresh as the newest of its hours it was built from; an hour recomputed later marks
            # the day stale (see _stale_days).
            computed_at = _hours_of_day(bucket_start).aggregate(latest=Max("computed_at"))["latest"] or CURSOR_START
            rows, records = _day_rows(bucket_start=bucket_start)
        UsageAggregate.objects.filter(granularity=granularity, bucket_start=bucket_start).delete()
        UsageAggregate.objects.bulk_create(rows, batch_size=1000)
        bucket.computed_at, bucket.records = computed_at, records
        bucket.save(update_fields=["computed_at", "records"])
    return True


def _locked_bucket(granularity: str, bucket_start: datetime) -> AggregatedBucket:
    # Insert-or-nothing, then lock: two workers creating the same bucket at once both end up waiting on one row
    # (a plain get_or_create could fail the second insert and abort the transaction).
    AggregatedBucket.objects.bulk_create(
        [AggregatedBucket(granularity=granularity, bucket_start=bucket_start)], ignore_conflicts=True
    )
    return AggregatedBucket.objects.select_for_update().get(granularity=granularity, bucket_start=bucket_start)


def _hours_of_day(day_start: datetime):
    return AggregatedBucket.objects.filter(
        granularity=HOUR_GRANULARITY, bucket_start__gte=day_start, bucket_start__lt=day_start + timedelta(days=1)
    )


# --- Finding what to recompute ----------------------------------------------------------------------------------


def aggregate_pending(*, now: datetime | None = None) -> int:
    """Recompute every hour with records not yet folded in and every day with such an hour; the number of
    buckets recomputed. Safe to run on many workers at once and to run again."""
    from billing.retention import frozen_before  # retention reads this module's buckets

    explicit_now, now = now, now or timezone.now()
    scan_until = now - timedelta(seconds=settings.TOLLWAY_AGGREGATE_SETTLE_S)
    cursor = _cursor()
    records = UsageRecord.objects.filter(stored_at__gte=cursor, stored_at__lt=scan_until)
    newest_by_hour = dict(
        records.annotate(hour=TruncHour("created_at"))
        .values("hour")
        .annotate(newest=Max("stored_at"))
        .values_list("hour", "newest")
    )
    recomputed = 0
    if newest_by_hour:
        computed = dict(
            AggregatedBucket.objects.filter(
                granularity=HOUR_GRANULARITY,
                bucket_start__gte=min(newest_by_hour),
                bucket_start__lte=max(newest_by_hour),
            ).values_list("bucket_start", "computed_at")
        )
        freeze_line = frozen_before(now)
        for hour, newest in sorted(newest_by_hour.items()):
            computed_at = computed.get(hour)
            if computed_at is not None and computed_at > newest:
                continue
            if computed_at is not None and hour + timedelta(hours=1) <= freeze_line:
                # Retention may be purging this hour's raw records: recomputing would lose them.
                log.warning("usage records for %s arrived after the hour left retention; not counted", hour)
                continue
            recomputed += aggregate_bucket(HOUR_GRANULARITY, hour, unless_computed_after=newest, now=explicit_now)
    for day in _stale_days():
        recomputed += aggregate_bucket(DAY_GRANULARITY, day)
    _advance_cursor(scan_until)
    return recomputed


def reaggregate(*, since: datetime | None = None, until: datetime | None = None, now: datetime | None = None) -> int:
    """Recompute whole every hour in [since, until) that still has raw records, and the days they fall in: how
    aggregates made before a new dimension (strategy, experiment) get it. Hours frozen for retention are left
    as they are (their raw records may be half purged); `since` defaults to the first hour not frozen. The
    number of buckets recomputed; safe beside aggregate_pending and to run again."""
    from billing.retention import frozen_before

    now = now or timezone.now()
    freeze_line = frozen_before(now)
    since = max(since or freeze_line, freeze_line)
    records = UsageRecord.objects.filter(created_at__gte=since)
    if until is not None:
        records = records.filter(created_at__lt=until)
    hours = records.annotate(hour=TruncHour("created_at")).values_list("hour", flat=True).distinct().order_by("hour")
    recomputed = sum(aggregate_bucket(HOUR_GRANULARITY, hour) for hour in hours)
    for day in _stale_days():
        recomputed += aggregate_bucket(DAY_GRANULARITY, day)
    return recomputed


def aggregate_pending_when_inline() -> int:
    """On the embedded default Celery runs tasks inline and there is no beat: readers of aggregates (the usage
    summary) call this first, so aggregates are current to within the settle delay. With a broker, beat does it."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return aggregate_pending()
    return 0


def _stale_days() -> list[datetime]:
    """Days that have an hour computed after the day itself (or were never computed)."""
    newest_hour_by_day = (
        AggregatedBucket.objects.filter(granularity=HOUR_GRANULARITY, computed_at__isnull=False)
        .annotate(day=TruncDay("bucket_start"))
        .values("day")
        .annotate(newest=Max("computed_at"))
        .values_list("day", "newest")
    )
    days = dict(
        AggregatedBucket.objects.filter(granularity=DAY_GRANULARITY, computed_at__isnull=False).values_list(
            "bucket_start", "computed_at"
        )
    )
    return sorted(day for day, newest in newest_hour_by_day if day not in days or days[day] < newest)


def aggregated_until() -> datetime | None:
    """Every record stored before this is in the aggregates (the cursor); None before the first run. The
    dashboards say it, so nobody mistakes a figure still waiting for its run for the whole truth."""
    cursor = _cursor()
    return None if cursor == CURSOR_START else cursor


def _cursor() -> datetime:
    cursor = AggregatedBucket.objects.filter(granularity=CURSOR_GRANULARITY, bucket_start=CURSOR_START).first()
    return (cursor and cursor.computed_at) or CURSOR_START


def _advance_cursor(to: datetime) -> None:
    AggregatedBucket.objects.bulk_create(
        [AggregatedBucket(granularity=CURSOR_GRANULARITY, bucket_start=CURSOR_START, computed_at=CURSOR_START)],
        ignore_conflicts=True,
    )
    # Only forwards: a slower run finishing after a faster one must not move it back.
    AggregatedBucket.objects.filter(
        granularity=CURSOR_GRANULARITY, bucket_start=CURSOR_START, computed_at__lt=to
    ).update(computed_at=to)
