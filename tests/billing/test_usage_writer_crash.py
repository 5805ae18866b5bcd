"""A gateway process killed at any step of storing its usage leaves, after recovery, exactly one record per
request: rows are on disk before the response ends and leave it only once stored; replays are ignored."""

import asyncio

import pytest

from billing.models import UsageRecord
from billing.services import recover_usage_outbox
from billing.usage_writer import INTERRUPTED
from tests.billing.usage_writer_doubles import (
    TARGET,
    DatabaseStore,
    RecordedSleeps,
    crash,
    eventually,
    new_writer,
    usage_event,
)

pytestmark = [pytest.mark.anyio, pytest.mark.django_db(transaction=True)]

REQUESTS = [f"req_{i:03d}" for i in range(60)]


async def stored() -> dict[str, UsageRecord]:
    records = await asyncio.to_thread(lambda: list(UsageRecord.objects.all()))
    return {r.request_id: r for r in records}


async def recover(directory) -> int:
    return await asyncio.to_thread(recover_usage_outbox, directory=directory)


async def submit_all(writer, request_ids=REQUESTS) -> None:
    for request_id in request_ids:
        writer.submit(usage_event(request_id))


async def test_a_crash_before_any_flush_leaves_every_row_to_recovery(tmp_path):
    writer = new_writer(tmp_path, DatabaseStore(), flush_interval_s=3600)
    writer.start()
    await submit_all(writer)
    await crash(writer)

    assert await recover(tmp_path) == 60
    assert sorted(await stored()) == REQUESTS


async def test_a_crash_while_the_database_is_away_leaves_every_row_to_recovery(tmp_path):
    store = DatabaseStore(failures=10**6)
    writer = new_writer(tmp_path, store, batch_size=7, memory_rows=10, sleep=RecordedSleeps())
    writer.start()
    await submit_all(writer, REQUESTS[:30])
    assert await eventually(lambda: bool(writer.outbox.sealed))  # one segment sealed, failing to store
    await submit_all(writer, REQUESTS[30:])  # these wait in the current segment, mostly out of memory
    await crash(writer)

    await recover(tmp_path)
    assert sorted(await stored()) == REQUESTS


async def test_a_crash_right_after_a_commit_before_the_segment_is_deleted_stores_nothing_twice(tmp_path):
    store = DatabaseStore(die_after=1)
    writer = new_writer(tmp_path, store, flush_interval_s=3600)
    writer.start()
    await submit_all(writer)
    flush = asyncio.ensure_future(writer.flush())
    assert await eventually(lambda: store.is_dead)
    flush.cancel()
    await crash(writer)
    assert sorted(await stored()) == REQUESTS  # committed, but the segment is still on disk

    await recover(tmp_path)

    assert sorted(await stored()) == REQUESTS
    assert await asyncio.to_thread(UsageRecord.objects.count) == 60
    assert list(tmp_path.glob("*.jsonl")) == []


async def test_a_crash_half_way_through_draining_a_backlog_stores_the_rest_once(tmp_path):
    # The database fails once, is back, stores three batches of ten, then the process dies. die_after is set
    # up front: set after the failure, the writer's immediate retry could store a fourth batch first.
    store = DatabaseStore(failures=1, die_after=3)
    writer = new_writer(tmp_path, store, batch_size=10, memory_rows=5, sleep=RecordedSleeps())
    writer.start()
    await submit_all(writer)
    assert await eventually(lambda: store.is_dead)
    await crash(writer)
    assert len(await stored()) == 30

    await recover(tmp_path)

    assert sorted(await stored()) == REQUESTS


async def test_a_stream_cut_by_a_crash_is_recorded_once_as_interrupted_and_finished_ones_as_they_ended(tmp_path):
    store = DatabaseStore(failures=2)
    writer = new_writer(tmp_path, store, batch_size=4, sleep=RecordedSleeps())
    writer.start()
    streams = [usage_event(f"req_stream_{i}", stream=True) for i in range(3)]
    for event in streams:
        event.is_closed, event.status = False, 0
        writer.begin_stream(event, target=TARGET, prompt_tokens=9)
    await submit_all(writer, REQUESTS[:10])
    assert await eventually(lambda: store.failures == 0 and writer.health().pending_rows == 0)
    # The open streams' provisional rows were carried into the new segment when the old one was deleted.
    for event in streams[:2]:
        event.close(status=200)
        writer.submit(event)
    await crash(writer)

    await recover(tmp_path)

    records = await stored()
    assert sorted(records) == sorted([*REQUESTS[:10], "req_stream_0", "req_stream_1", "req_stream_2"])
    cut = records["req_stream_2"]
    assert (cut.status, cut.error_type, cut.stream, cut.estimated) == (200, INTERRUPTED, True, True)
    assert (cut.prompt_tokens, cut.completion_tokens, str(cut.cost_usd)) == (9, 0, "0.0090000000")
    finished = records["req_stream_0"]
    assert (finished.error_type, finished.completion_tokens) == ("", 12)


async def test_a_live_writer_never_stores_an_open_streams_provisional_row(tmp_path):
    writer = new_writer(tmp_path, DatabaseStore())
    writer.start()
    stream = usage_event("req_stream", stream=True)
    stream.is_closed, stream.status = False, 0
    writer.begin_stream(stream, target=TARGET, prompt_tokens=9)
    await submit_all(writer, REQUESTS[:5])
    assert await eventually(lambda: writer.health().pending_rows == 0)

    assert sorted(await stored()) == REQUESTS[:5]
    stream.close(status=200)
    writer.submit(stream)
    await writer.close()
    assert (await stored())["req_stream"].error_type == ""
