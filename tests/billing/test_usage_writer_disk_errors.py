"""A failing disk write (disk full) loses no row either: the row stays in memory until a new segment takes it
or the database stores it, and the segment that failed is stored and retired."""

import os

import pytest

from tests.billing.usage_writer_doubles import MemoryStore, new_writer, usage_event

pytestmark = pytest.mark.anyio


def break_writes(segment) -> None:
    os.close(segment.fd)
    segment.fd = os.open(os.devnull, os.O_RDONLY)  # every write now fails, as on a full disk


async def test_rows_a_full_disk_refused_are_kept_in_memory_and_stored(tmp_path):
    store = MemoryStore(failures=1)
    writer = new_writer(tmp_path, store)
    writer.outbox.open()
    writer.submit(usage_event("req_on_disk"))
    break_writes(writer.outbox.current)

    writer.submit(usage_event("req_refused_1"))
    writer.submit(usage_event("req_refused_2"))

    health = writer.health()
    assert (health.pending_rows, health.memory_only_rows) == (3, 2)
    with pytest.raises(Exception, match="connection refused"):
        await writer.flush()  # a new segment opens and takes the memory-only rows; the database is away
    assert writer.health().memory_only_rows == 0

    await writer.flush()
    assert sorted(store.records) == ["req_on_disk", "req_refused_1", "req_refused_2"]
    await writer.close()
    assert list(tmp_path.glob("*.jsonl")) == []


async def test_with_no_segment_to_write_rows_wait_in_memory_for_the_database(tmp_path, monkeypatch):
    store = MemoryStore()
    writer = new_writer(tmp_path, store)
    writer.outbox.open()
    break_writes(writer.outbox.current)
    writer.submit(usage_event("req_1"))
    monkeypatch.setattr(writer.outbox, "reopen", lambda **_: False)  # the directory is unwritable too

    assert await writer.flush() == 1
    assert list(store.records) == ["req_1"]
    await writer.close()
