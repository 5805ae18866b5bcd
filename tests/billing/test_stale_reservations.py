"""Reservations of a gateway process that dies without settling (SIGKILL, OOM) are given back once its lease
lapses, instead of holding a budget until the period ends. Needs Redis (REDIS_URL: CI's second run)."""

import asyncio
import threading
import time
from decimal import Decimal

import httpx
import pytest
import redis
from django.conf import settings

from billing import budgets, tasks
from billing.ledger.counters import Counter
from billing.ledger.stores import KEY_PREFIX, KEY_PREFIX_OWNER, RedisStore
from billing.models import Budget
from portal import services
from tests.billing.ledger_helpers import clear_ledger_in_redis, price_the_catalogue
from tests.gateway_process import GatewayProcess

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL: reservations are leased in Redis")


@pytest.fixture(autouse=True)
def fresh_ledger():
    clear_ledger_in_redis()
    yield
    clear_ledger_in_redis()


def budget_counter(amount: int) -> Counter:
    now = time.time()
    return Counter("budget:999:usd:0", "usd", 1000, amount, now - 60, now + 3600, "team budget", 999)


def held(field: str = "r") -> int:
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        return int(client.hget(KEY_PREFIX + "budget:999:usd:0", field) or 0)
    finally:
        client.close()


async def reserve_in_two_processes_then_one_dies():
    alive, dead = RedisStore(settings.REDIS_URL, lease_s=30), RedisStore(settings.REDIS_URL, lease_s=30)
    try:
        assert not isinstance(await dead.reserve([budget_counter(600)], time.time()), Exception)
        assert not isinstance(await alive.reserve([budget_counter(300)], time.time()), Exception)
        refused = await alive.reserve([budget_counter(200)], time.time())  # 900 held of 1000
        await dead.client.delete(KEY_PREFIX_OWNER + dead.owner)  # its lease lapses: the process is gone
        released = await asyncio.to_thread(budgets.release_stale_reservations)
        after_release = held()
        admitted = await alive.reserve([budget_counter(600)], time.time())
        await alive.settle([budget_counter(300)], [250])
        await alive.settle([budget_counter(600)], [100])
        await dead.settle([budget_counter(600)], [40])  # it was only stalled: its late settle must not refund twice
        return refused, released, after_release, admitted
    finally:
        await alive.aclose()
        await dead.aclose()


def test_what_a_dead_process_reserved_is_released_and_a_live_ones_is_kept():
    refused, released, after_release, admitted = asyncio.run(reserve_in_two_processes_then_one_dies())

    assert refused.used == 900
    assert (released, after_release) == (600, 300)
    assert not isinstance(admitted, Exception) and admitted == [900]
    assert (held("r"), held("s")) == (0, 250 + 100 + 40)


def test_a_release_with_every_process_alive_changes_nothing():
    async def reserve_and_release():
        store = RedisStore(settings.REDIS_URL, lease_s=30)
        try:
            await store.reserve([budget_counter(500)], time.time())
            return await asyncio.to_thread(budgets.release_stale_reservations), held()
        finally:
            await store.aclose()

    assert asyncio.run(reserve_and_release()) == (0, 500)


def call_and_expect_the_crash(url: str, key: str, body: dict) -> None:
    try:
        httpx.post(f"{url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"})
    except httpx.TransportError:
        pass  # the gateway is killed while this call is in flight


@pytest.mark.django_db(transaction=True)
def test_a_sigkilled_gateway_stops_holding_its_reservations_once_its_lease_lapses(catalogue, team, tmp_path):
    price_the_catalogue()
    key = services.issue_api_key(team=team, name="crashy").secret
    budget = Budget.objects.create(
        tenant=team.tenant, scope="team", target_id=team.pk, period="monthly", limit_usd=Decimal("1")
    )
    body = {"model": "slow", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 20}
    gateway = GatewayProcess(env={"TOLLWAY_LEDGER_LEASE_S": "2"}, outbox_dir=tmp_path / "outbox").start()
    try:
        in_flight = threading.Thread(target=call_and_expect_the_crash, args=(gateway.url, key, body), daemon=True)
        in_flight.start()
        deadline = time.monotonic() + 10
        while budgets.current_spend(budget)["reserved_usd"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        reserved_before_the_crash = budgets.current_spend(budget)["reserved_usd"]
        gateway.kill()
    finally:
        if gateway.process.poll() is None:
            gateway.kill()
    held_right_after = budgets.current_spend(budget)["reserved_usd"]
    time.sleep(2.5)  # the lease (2 s) lapses

    tasks.reconcile_budgets()

    assert reserved_before_the_crash == Decimal("0.0470000000")  # 7 prompt + 20 max_tokens at $1000 / $2000 per 1M
    assert held_right_after == reserved_before_the_crash  # nothing settled it: the process was killed
    assert budgets.current_spend(budget)["reserved_usd"] == 0


def test_a_live_process_keeps_its_lease_through_a_call_longer_than_the_lease():
    async def reserve_wait_and_release():
        store = RedisStore(settings.REDIS_URL, lease_s=1)  # renewed every 0.25 s
        try:
            await store.reserve([budget_counter(500)], time.time())
            await asyncio.sleep(2.5)  # a long stream: no reservation renews the lease meanwhile
            return await asyncio.to_thread(budgets.release_stale_reservations), held()
        finally:
            await store.aclose()

    assert asyncio.run(reserve_wait_and_release()) == (0, 500)
