"""While the database is away the writer keeps every row, retries with backoff instead of on every request,
keeps its open files and its memory bounded, and says so once (not once per try)."""

import logging

import pytest

from billing.outbox import Outbox
from billing.usage_writer import UsageWriter
from tests.billing.usage_writer_doubles import MemoryStore, RecordedSleeps, eventually, new_writer, usage_event

pytestmark = pytest.mark.anyio


def segment_files(directory) -> list:
    return sorted(directory.glob("*.jsonl"))


async def test_a_store_failing_five_times_then_succeeding_loses_nothing_and_backs_off_exponentially(tmp_path):
    store, sleeps = MemoryStore(failures=5), RecordedSleeps()
    writer = new_writer(tmp_path, store, retry_max_s=0.1, sleep=sleeps)
    writer.start()
    for i in range(30):
        writer.submit(usage_event(f"req_{i}"))

    assert await eventually(lambda: len(store.records) == 30)
    await writer.close()

    assert sorted(store.records) == sorted(f"req_{i}" for i in range(30))
    assert store.calls == 6
    ceilings = [0.02, 0.04, 0.08, 0.1, 0.1]  # the flush interval doubling, capped at retry_max_s
    assert len(sleeps.delays) == 5
    assert all(ceiling / 2 <= delay <= ceiling for delay, ceiling in zip(sleeps.delays, ceilings, strict=True))
    assert segment_files(tmp_path) == []


async def test_new_requests_do_not_wake_a_writer_whose_database_is_away(tmp_path):
    store, sleeps = MemoryStore(failures=10**6), RecordedSleeps()
    writer = new_writer(tmp_path, store, batch_size=5, sleep=sleeps)
    writer.start()
    writer.submit(usage_event("req_first"))
    assert await eventually(lambda: store.calls >= 2)

    calls_before = store.calls
    for i in range(500):  # a hundred batches' worth, each of which used to wake the writer for a try
        writer.submit(usage_event(f"req_{i}"))

    assert store.calls - calls_before <= 1
    await writer.close()


async def test_open_files_stay_bounded_through_a_thousand_failed_tries(tmp_path):
    store = MemoryStore(failures=1000)
    writer = new_writer(tmp_path, store, sleep=RecordedSleeps(), batch_size=2)
    writer.start()
    for i in range(2000):
        writer.submit(usage_event(f"req_{i}"))
        if i % 100 == 0:
            assert len(segment_files(tmp_path)) <= 2
            assert writer.health().open_segments <= 2

    assert await eventually(lambda: len(store.records) == 2000)
    assert store.calls > 1000
    await writer.close()
    assert segment_files(tmp_path) == []


async def test_rows_beyond_the_memory_bound_are_read_back_from_the_outbox_when_the_database_returns(tmp_path):
    store = MemoryStore(failures=10**6)
    writer = new_writer(tmp_path, store, memory_rows=50, sleep=RecordedSleeps())
    writer.start()
    for i in range(1000):
        writer.submit(usage_event(f"req_{i}"))
    assert await eventually(lambda: store.calls >= 3)

    segments = [*writer.outbox.sealed, writer.outbox.current]
    assert sum(len(s.cached or ()) for s in segments) <= 50 * len(segments)
    assert writer.health().pending_rows == 1000

    store.failures = 0
    assert await eventually(lambda: len(store.records) == 1000)
    assert writer.health().pending_rows == 0
    await writer.close()


async def test_an_outage_logs_one_warning_and_its_end_one_info_line(tmp_path, caplog):
    store = MemoryStore(failures=20)
    writer = new_writer(tmp_path, store, sleep=RecordedSleeps())
    with caplog.at_level(logging.DEBUG, logger="billing.usage_writer"):
        writer.start()
        writer.submit(usage_event("req_1"))
        assert await eventually(lambda: "req_1" in store.records)
        await writer.close()

    records = [r for r in caplog.records if r.name == "billing.usage_writer" and r.levelno >= logging.INFO]
    assert [r.levelname for r in records] == ["WARNING", "INFO"]
    assert "DatabaseDown: connection refused" in records[0].getMessage()
    assert "20 failed tries" in records[1].getMessage()
    assert all(r.exc_info is None for r in caplog.records)


async def test_health_reports_pending_rows_their_age_and_the_failure(tmp_path):
    now = [100.0]
    store = MemoryStore(failures=10**6)
    writer = UsageWriter(
        outbox=Outbox(tmp_path),
        store=store,
        flush_interval_s=0.01,
        batch_size=500,
        sleep=RecordedSleeps(),
        clock=lambda: now[0],
    )
    writer.start()
    writer.submit(usage_event("req_1"))
    writer.submit(usage_event("req_2"))
    assert await eventually(lambda: store.calls >= 1)

    now[0] = 107.0
    health = writer.health()
    assert (health.pending_rows, health.is_failing, health.memory_only_rows) == (2, True, 0)
    assert (health.oldest_pending_s, health.failing_for_s) == (7.0, 7.0)

    store.failures = 0
    assert await eventually(lambda: writer.health().pending_rows == 0)
    assert writer.health().is_failing is False
    await writer.close()
