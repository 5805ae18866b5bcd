"""A segment that cannot be opened (too many open files) loses no row: the rows stay in the segment they are
in, and the next round of storing takes them."""

import errno
import os

import pytest

from billing import outbox as outbox_module
from tests.billing.usage_writer_doubles import MemoryStore, new_writer, usage_event

pytestmark = pytest.mark.anyio


@pytest.fixture
def too_many_open_files(monkeypatch):
    """Once switched on, opening a file fails with EMFILE, as at the process's ulimit -n."""
    state = {"is_on": False}
    real_open = os.open

    def open_or_fail(path, *args, **kwargs):
        if state["is_on"]:
            raise OSError(errno.EMFILE, "Too many open files")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(outbox_module.os, "open", open_or_fail)
    return state


async def test_rows_survive_flushes_that_cannot_open_a_new_segment(tmp_path, too_many_open_files):
    store = MemoryStore()
    writer = new_writer(tmp_path, store)
    writer.outbox.open()  # the background task stays off: this test calls flush itself
    for i in range(20):
        writer.submit(usage_event(f"req_{i}"))

    too_many_open_files["is_on"] = True
    for _ in range(3):
        with pytest.raises(OSError, match="Too many open files"):
            await writer.flush()
    for i in range(20, 30):
        writer.submit(usage_event(f"req_{i}"))
    assert writer.health().pending_rows == 30

    too_many_open_files["is_on"] = False
    assert await writer.flush() == 30
    assert sorted(store.records) == sorted(f"req_{i}" for i in range(30))
    assert len(list(tmp_path.glob("*.jsonl"))) == 1  # the current segment, empty
    await writer.close()


async def test_a_database_that_returns_while_files_are_short_stores_nothing_twice_and_nothing_less(
    tmp_path, too_many_open_files
):
    store = MemoryStore(failures=1)
    writer = new_writer(tmp_path, store)
    writer.outbox.open()
    for i in range(10):
        writer.submit(usage_event(f"req_{i}"))
    with pytest.raises(Exception, match="connection refused"):
        await writer.flush()  # sealed one segment, whose rows wait for the database

    too_many_open_files["is_on"] = True
    for i in range(10, 15):
        writer.submit(usage_event(f"req_{i}"))
    with pytest.raises(OSError):
        await writer.flush()  # the sealed segment is stored; the current one cannot be rotated yet
    assert sorted(store.records) == sorted(f"req_{i}" for i in range(10))

    too_many_open_files["is_on"] = False
    await writer.flush()
    assert sorted(store.records) == sorted(f"req_{i}" for i in range(15))
    await writer.close()
