"""Raw usage records roll up into hourly and daily aggregates: exact sums, percentiles, status classes, late
records folded in, re-runs that change nothing, and concurrent recomputes of one bucket."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from billing import aggregation
from billing.aggregation import aggregate_bucket, aggregate_pending
from billing.models import AggregatedBucket, UsageAggregate, UsageRecord
from billing.services import store_usage_rows
from tests.billing.factories import UsageRecordFactory

# Two days ago at noon, so retention (90 days) never freezes it, whenever the tests run.
DAY = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
HOUR = DAY + timedelta(hours=12)
STORED = HOUR + timedelta(minutes=30)  # records reached the database long before the aggregation runs


@pytest.fixture(autouse=True)
def no_settle_delay(settings):
    settings.TOLLWAY_AGGREGATE_SETTLE_S = 0


def record(minute: int = 0, **fields) -> UsageRecord:
    fields.setdefault("stored_at", STORED)
    return UsageRecordFactory(created_at=HOUR + timedelta(minutes=minute), **fields)


def the_hour_mix() -> None:
    """Four successes, a 5xx after retries, a 4xx refused before routing; and one success the next hour."""
    record(1, prompt_tokens=100, completion_tokens=50, cost_usd=Decimal("0.0012345678"),
           baseline_cost_usd=Decimal("0.0020000000"), latency_ms=10, ttfb_ms=5, attempts=1)  # fmt: skip
    record(2, prompt_tokens=200, completion_tokens=80, cost_usd=Decimal("0.0100000001"),
           baseline_cost_usd=Decimal("0.0150000000"), latency_ms=20, ttfb_ms=6, attempts=2, stream=True,
           cached_tokens=64)  # fmt: skip
    record(3, prompt_tokens=300, completion_tokens=20, cost_usd=Decimal("0.0000000009"),
           baseline_cost_usd=Decimal("0.0000000009"), latency_ms=30, ttfb_ms=7, attempts=3)  # fmt: skip
    record(4, prompt_tokens=1, completion_tokens=1, cost_usd=Decimal("0.1"), baseline_cost_usd=Decimal("0.2"),
           latency_ms=40, ttfb_ms=8, attempts=1)  # fmt: skip
    record(5, status=502, error_type="upstream_error", attempts=3, prompt_tokens=0, cost_usd=Decimal(0),
           latency_ms=100, ttfb_ms=None)  # fmt: skip
    record(6, status=400, error_type="invalid_request_error", attempts=0, prompt_tokens=0, cost_usd=Decimal(0),
           latency_ms=1, ttfb_ms=None)  # fmt: skip
    record(61, alias="other", prompt_tokens=7, completion_tokens=3, cost_usd=Decimal("0.5"),
           baseline_cost_usd=Decimal("0.5"), latency_ms=50, ttfb_ms=9)  # fmt: skip


def hour_rows(**filters) -> list[UsageAggregate]:
    return list(UsageAggregate.objects.filter(granularity="hour", bucket_start=HOUR, **filters))


def snapshot() -> list[tuple]:
    """Every aggregate row without its id and timestamp, in a stable order."""
    fields = [f.name for f in UsageAggregate._meta.fields if f.name not in {"id", "computed_at"}]
    return sorted(tuple(str(v) for v in row) for row in UsageAggregate.objects.values_list(*fields))


@pytest.mark.django_db
def test_an_hour_sums_to_the_last_decimal_with_exact_percentiles_per_status_class():
    the_hour_mix()

    assert aggregate_pending() == 3  # two hours and the day they share
    (ok,) = hour_rows(status_class="2xx")
    assert (ok.requests, ok.errors, ok.streams, ok.fallbacks, ok.retries) == (4, 0, 1, 2, 3)
    assert (ok.prompt_tokens, ok.completion_tokens, ok.cached_tokens) == (601, 151, 64)
    assert ok.cost_usd == Decimal("0.1112345688")
    assert ok.baseline_cost_usd == Decimal("0.2170000009")
    assert ok.latency_ms_sum == 100
    # percentile_cont over 10, 20, 30, 40 ms: rank 1.5 -> 25; rank 2.85 -> 38.5; rank 2.97 -> 39.7
    assert ok.latency_p50_ms == pytest.approx(25.0)
    assert ok.latency_p95_ms == pytest.approx(38.5)
    assert ok.latency_p99_ms == pytest.approx(39.7)
    assert (ok.ttfb_p50_ms, ok.ttfb_p95_ms) == (pytest.approx(6.5), pytest.approx(7.85))
    assert sum(ok.latency_histogram.values()) == 4 and sum(ok.ttfb_histogram.values()) == 4
    assert (ok.alias, ok.team_name, ok.error_type, ok.cache_hit) == ("gpt-4o-mini", "Checkout", "", False)

    (failed,) = hour_rows(status_class="5xx")
    assert (failed.requests, failed.errors, failed.fallbacks, failed.retries) == (1, 1, 1, 2)
    assert failed.error_type == "upstream_error" and failed.cost_usd == 0
    assert failed.latency_p50_ms == 100 and failed.ttfb_p50_ms is None and failed.ttfb_histogram == {}
    (refused,) = hour_rows(status_class="4xx")
    assert (refused.requests, refused.errors, refused.retries, refused.error_type) == (1, 1, 0, "invalid_request_error")

    (next_hour,) = UsageAggregate.objects.filter(granularity="hour", bucket_start=HOUR + timedelta(hours=1))
    assert (next_hour.alias, next_hour.requests, next_hour.cost_usd) == ("other", 1, Decimal("0.5"))
    assert AggregatedBucket.objects.get(granularity="hour", bucket_start=HOUR).records == 6


@pytest.mark.django_db
def test_a_day_adds_up_its_hours_and_estimates_percentiles_within_the_documented_error():
    the_hour_mix()
    record(30, prompt_tokens=10, completion_tokens=0, cost_usd=Decimal("0.0000000001"),
           baseline_cost_usd=Decimal("0.0000000001"), latency_ms=60, ttfb_ms=10)  # fmt: skip
    UsageRecordFactory(created_at=HOUR + timedelta(hours=3), stored_at=STORED, latency_ms=1000, ttfb_ms=10,
                       cost_usd=Decimal("0.25"), baseline_cost_usd=Decimal("0.25"))  # fmt: skip

    aggregate_pending()

    (day,) = UsageAggregate.objects.filter(granularity="day", bucket_start=DAY, status_class="2xx", alias="gpt-4o-mini")
    # 601 + 10 + 9 prompt tokens; 0.1112345688 + 0.0000000001 + 0.25 dollars; six successes over two hours.
    assert (day.requests, day.prompt_tokens, day.completion_tokens) == (6, 620, 151)
    assert day.cost_usd == Decimal("0.3612345689")
    assert day.baseline_cost_usd == Decimal("0.4670000010")
    # Exact percentile_cont over 10, 20, 30, 40, 60, 1000 ms: p50 = 35, p95 = 60 + 0.75 * 940 = 765.
    bound = aggregation.HISTOGRAM_RELATIVE_ERROR
    assert day.latency_p50_ms == pytest.approx(35, rel=bound)
    assert day.latency_p95_ms == pytest.approx(765, rel=bound)
    assert day.latency_p50_ms != 35  # an estimate from the histogram, not the exact value
    assert sum(day.latency_histogram.values()) == 6
    assert AggregatedBucket.objects.get(granularity="day", bucket_start=DAY).records == 9


@pytest.mark.django_db
def test_a_request_id_stored_twice_is_counted_once():
    row = {
        "request_id": "req_duplicate", "created_at": (HOUR + timedelta(minutes=5)).timestamp(),
        "tenant_id": None, "team_id": None, "api_key_id": None, "tenant_name": "Acme", "team_name": "Checkout",
        "key_prefix": "sk-tw-abcd", "endpoint": "chat.completions", "alias": "gpt-4o-mini", "deployment": "main",
        "provider": "openai", "status": 200, "error_type": "", "attempts": 1, "stream": False,
        "prompt_tokens": 9, "completion_tokens": 12, "cached_tokens": 0, "cost_usd": "0.0000085500",
        "estimated": False, "latency_ms": 12.0, "ttfb_ms": 12.0, "upstream_latency_ms": 10.0,
    }  # fmt: skip
    store_usage_rows(rows=[row, {**row, "request_id": "req_other"}])
    store_usage_rows(rows=[row])  # a replay after a crash
    UsageRecord.objects.update(stored_at=STORED)

    aggregate_pending()

    (aggregate,) = hour_rows()
    assert (aggregate.requests, aggregate.prompt_tokens, aggregate.completion_tokens) == (2, 18, 24)
    assert aggregate.cost_usd == Decimal("0.0000171000")


@pytest.mark.django_db
def test_a_late_record_is_folded_into_its_hour_and_day():
    the_hour_mix()
    aggregate_pending()
    # Stored now, for a request two days ago: a gateway's outbox recovered after a crash.
    record(45, stored_at=timezone.now(), prompt_tokens=1000, completion_tokens=1, cost_usd=Decimal("0.0000000003"),
           baseline_cost_usd=Decimal("0.0000000003"), latency_ms=20, ttfb_ms=6)  # fmt: skip

    assert aggregate_pending() == 2  # its hour, then its day

    (ok,) = hour_rows(status_class="2xx")
    assert (ok.requests, ok.prompt_tokens, ok.cost_usd) == (5, 1601, Decimal("0.1112345691"))
    (day,) = UsageAggregate.objects.filter(granularity="day", bucket_start=DAY, status_class="2xx", alias="gpt-4o-mini")
    assert (day.requests, day.prompt_tokens, day.cost_usd) == (5, 1601, Decimal("0.1112345691"))


@pytest.mark.django_db
def test_running_again_or_recomputing_every_bucket_changes_nothing():
    the_hour_mix()
    aggregate_pending()
    before = snapshot()

    assert aggregate_pending() == 0
    for bucket in AggregatedBucket.objects.filter(granularity__in=["hour", "day"]).order_by("granularity"):
        assert aggregate_bucket(bucket.granularity, bucket.bucket_start)

    assert snapshot() == before


@pytest.mark.django_db
def test_records_younger_than_the_settle_delay_wait_for_the_next_run(settings):
    settings.TOLLWAY_AGGREGATE_SETTLE_S = 5
    now = timezone.now()
    record(10, stored_at=now - timedelta(seconds=2))

    assert aggregate_pending(now=now) == 0
    assert hour_rows() == []

    assert aggregate_pending(now=now + timedelta(seconds=4)) == 2
    assert [row.requests for row in hour_rows()] == [1]


@pytest.mark.django_db
def test_an_hour_past_retention_is_not_recomputed_from_its_purged_records(settings):
    old_hour = HOUR - timedelta(days=settings.TOLLWAY_USAGE_RETENTION_DAYS)
    UsageRecordFactory(created_at=old_hour, stored_at=old_hour + timedelta(minutes=1))
    aggregate_pending(now=old_hour + timedelta(hours=2))  # aggregated back then
    UsageRecord.objects.all().delete()  # purged since
    UsageRecordFactory(created_at=old_hour, stored_at=STORED)  # a straggler, three months late

    aggregate_pending()

    (aggregate,) = UsageAggregate.objects.filter(granularity="hour", bucket_start=old_hour)
    assert aggregate.requests == 1  # still the complete row of back then, not one rebuilt from the straggler alone


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks between threads need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_two_workers_recomputing_one_hour_at_once_leave_one_correct_set_of_rows():
    UsageRecord.objects.bulk_create(
        UsageRecordFactory.build(created_at=HOUR + timedelta(milliseconds=100 * i), stored_at=STORED,
                                 team_name=f"T{i % 40}", cost_usd=Decimal("0.0000000001") * (i % 7),
                                 latency_ms=float(i % 100 + 1))
        for i in range(4000)
    )  # fmt: skip
    aggregate_pending()  # the bucket's row exists: from here only its lock keeps recomputes apart
    start = threading.Barrier(3)
    errors = []

    def worker(run) -> None:
        try:
            start.wait()
            run()
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    runs = [lambda: aggregate_bucket("hour", HOUR)] * 3
    threads = [threading.Thread(target=worker, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    rows = hour_rows()
    assert len(rows) == 40
    assert sum(r.requests for r in rows) == 4000
    # i % 7 over 0..3999: 571 full cycles of 0+1+...+6 = 21, then 0+1+2 for i = 3997..3999.
    assert sum(r.cost_usd for r in rows) == Decimal("0.0000000001") * (571 * 21 + 3)
    assert AggregatedBucket.objects.filter(granularity="hour", bucket_start=HOUR).count() == 1
