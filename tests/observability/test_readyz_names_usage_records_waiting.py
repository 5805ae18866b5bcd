"""While usage rows cannot reach the database, /readyz stays 200 but names them: they wait in the outbox."""

import pytest

from billing import usage_writer
from routing.observability import readiness
from tests.billing.usage_writer_doubles import MemoryStore, RecordedSleeps, eventually, new_writer, usage_event

pytestmark = pytest.mark.anyio


async def test_readyz_is_degraded_naming_usage_records_while_storing_fails_and_ready_once_it_works(tmp_path):
    store = MemoryStore(failures=10**6)
    writer = new_writer(tmp_path, store, sleep=RecordedSleeps())
    writer.start()
    usage_writer.install(writer)
    readiness.register_builtin_checks()
    try:
        writer.submit(usage_event("req_waiting"))
        assert await eventually(lambda: store.calls >= 1)

        failing = await readiness.check_usage_records()
        store.failures = 0
        assert await eventually(lambda: "req_waiting" in store.records)
        recovered = await readiness.check_usage_records()
    finally:
        usage_writer.install(None)
        await writer.close()

    # Registered as degrade-only: a failing check names it in "degraded" with 200, never 503.
    assert readiness._checks["usage_records"][1] is False
    assert failing.is_ok is False
    assert (failing.detail["is_failing"], failing.detail["pending_rows"]) == (True, 1)
    assert recovered.is_ok is True
    assert (recovered.detail["is_failing"], recovered.detail["pending_rows"]) == (False, 0)
