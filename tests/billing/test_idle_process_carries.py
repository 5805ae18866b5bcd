"""A gateway process that gets no call during a Redis outage still hands its share of the minute to the
database: another process admitting there must not start below what this one already admitted."""

import time

import anyio
import pytest

from billing.ledger import admission
from billing.ledger.counters import Counter, minute_window
from billing.models import RateWindow
from config import db_thread
from config.db_thread import run_in_db
from tests.redis_server import IS_INSTALLED, RedisServer

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not IS_INSTALLED, reason="needs redis-server to start a Redis of the test's own"),
]


def used_in_the_database(counter_key: str) -> int:
    return RateWindow.objects.filter(counter_key=counter_key).values_list("used", flat=True).first() or 0


@pytest.mark.anyio
async def test_a_process_idle_during_a_redis_outage_still_hands_its_count_to_the_database(monkeypatch):
    monkeypatch.setattr(admission, "TALLY_SYNC_S", 0.05)
    own_redis = RedisServer().start()
    ledger = admission.Ledger(redis_url=own_redis.url)
    now = time.time()
    counter = Counter(f"rpm:key:77:{int(now // 60)}", "requests", 100, 1, *minute_window(now), "key")
    try:
        admitted = [await ledger.reserve([counter], now) for _ in range(4)]
        own_redis.stop()
        deadline = time.monotonic() + 10
        while (carried := await run_in_db(used_in_the_database, counter.key)) != 4:
            assert time.monotonic() < deadline, f"{carried} of this process's 4 calls reached the database"
            await anyio.sleep(0.05)
    finally:
        await ledger.aclose()
        own_redis.stop()
        await anyio.to_thread.run_sync(db_thread.shutdown)  # its connection, so the test database can go

    assert all(isinstance(a, admission.Reservation) for a in admitted)
    assert ledger.mode == "database-fallback"
