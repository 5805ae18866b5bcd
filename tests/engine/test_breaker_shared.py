"""Breakers shared between processes through a real Redis (REDIS_URL, else db 6 on the local server; skipped
when unreachable): two boards, each with its SharedBreakers listening, stand for two gateway processes."""

import asyncio
import json
import logging
import os
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from core.values import BreakerPolicy
from routing.engine.breaker import CLOSED, HALF_OPEN, OPEN, BreakerBoard, SharedBreakers
from tests.upstreams.server import free_port

pytestmark = pytest.mark.anyio

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/6"
WALL_START = 1_000_000.0
POLICY = BreakerPolicy(consecutive_failures=3, cooldown_s=30)


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def redis_client(url: str = REDIS_URL) -> redis.Redis:
    # No retries inside the client: an outage shows at once, and the listener's own back-off takes over.
    return redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=2, retry=Retry(NoBackoff(), 0))


@dataclass
class Process:
    board: BreakerBoard
    clock: FakeClock
    shared: SharedBreakers


def make_process(prefix: str, process_id: str, *, url: str = REDIS_URL) -> Process:
    clock = FakeClock(500.0)
    # One wall clock for all, as NTP gives the gateways: each process has its own monotonic one.
    board = BreakerBoard(clock=clock, wall=lambda: WALL_START)
    shared = SharedBreakers(board, redis_client=redis_client(url), prefix=prefix, process_id=process_id)
    return Process(board, clock, shared)


@asynccontextmanager
async def running(process: Process, *, wait_connected: bool = True):
    task = asyncio.get_running_loop().create_task(process.shared.run_forever(interval_s=0.01))
    try:
        if wait_connected:
            await eventually(lambda: process.shared.is_connected)
        yield task
    finally:
        task.cancel()
        await asyncio.wait({task}, timeout=5)
        await process.shared.redis.aclose()
        assert task.done(), "run_forever did not stop when cancelled"


async def eventually(condition, *, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("not within 5 s")
        await asyncio.sleep(0.005)


def open_here(process: Process, deployment: str) -> None:
    for _ in range(POLICY.consecutive_failures):
        process.board.record(deployment, POLICY, ok=False)
    assert process.board.state(deployment, POLICY) == OPEN


@pytest.fixture
async def prefix():
    """A prefix of the test's own (channels are server-wide, not per db), its hash removed afterwards."""
    client = redis_client()
    try:
        await client.ping()
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        await client.aclose()
        pytest.skip(f"no Redis at {REDIS_URL}")
    name = f"tollway-test-{uuid.uuid4().hex[:12]}"
    yield name
    await client.delete(f"{name}:breakers")
    await client.aclose()


async def test_a_breaker_opened_in_one_process_is_open_in_the_other(prefix):
    a, b = make_process(prefix, "a"), make_process(prefix, "b")
    async with running(a), running(b):
        open_here(a, "gpt")

        await eventually(lambda: b.board.state("gpt", POLICY) == OPEN)

        assert b.board.is_open("gpt", POLICY)
        b.clock.now += 29.9  # A's cooldown, carried over
        assert b.board.state("gpt", POLICY) == OPEN
        b.clock.now += 0.1
        assert b.board.state("gpt", POLICY) == HALF_OPEN


async def test_a_breaker_closed_in_one_process_closes_in_the_other(prefix):
    a, b = make_process(prefix, "a"), make_process(prefix, "b")
    async with running(a), running(b):
        open_here(a, "gpt")
        await eventually(lambda: b.board.state("gpt", POLICY) == OPEN)

        a.clock.now += 30
        assert a.board.acquire("gpt", POLICY)
        a.board.record("gpt", POLICY, ok=True)

        await eventually(lambda: b.board.state("gpt", POLICY) == CLOSED)  # B's own clock says it still cools
        assert b.board.acquire("gpt", POLICY)


async def test_a_hold_in_one_process_holds_the_deployment_in_the_other(prefix):
    a, b = make_process(prefix, "a"), make_process(prefix, "b")
    async with running(a), running(b):
        a.board.hold("gpt", 20)

        await eventually(lambda: b.board.is_open("gpt", POLICY))

        assert b.board.held_for("gpt") == 20
        assert b.board.state("gpt", POLICY) == CLOSED


async def test_a_process_ignores_its_own_messages(prefix):
    # Two boards with one process id: what one publishes the other takes as its own, and ignores.
    a, same_process, b = make_process(prefix, "a"), make_process(prefix, "a"), make_process(prefix, "b")
    async with running(a), running(same_process), running(b):
        open_here(a, "mine")
        await eventually(lambda: b.board.state("mine", POLICY) == OPEN)
        open_here(b, "theirs")  # published after A's, so heard after it

        await eventually(lambda: same_process.board.state("theirs", POLICY) == OPEN)

        assert same_process.board.state("mine", POLICY) == CLOSED


async def test_a_process_that_starts_later_loads_the_states_still_in_force(prefix):
    a = make_process(prefix, "a")
    async with running(a):
        open_here(a, "broken")
        a.board.hold("limited", 12)
        await a.shared.publish_pending()
    client = redis_client()
    await client.hset(
        f"{prefix}:breakers",
        mapping={
            "breaker:over": json.dumps({"deployment": "over", "state": OPEN, "until": WALL_START - 1, "process": "z"}),
            "breaker:garbled": "{not json",
            "breaker:list": "[1, 2]",
            "breaker:no-end": json.dumps({"deployment": "no-end", "state": OPEN, "process": "z"}),
            "breaker:ajar": json.dumps(
                {"deployment": "ajar", "state": "ajar", "until": WALL_START + 9, "process": "z"}
            ),
            "breaker:long": json.dumps(
                {"deployment": "d" * 201, "state": OPEN, "until": WALL_START + 9, "process": "z"}
            ),
            "breaker:big": "x" * 5000,
            "breaker:deep": "[" * 1000,
        },
    )
    await client.aclose()

    later = make_process(prefix, "later")
    await later.shared.load()
    await later.shared.redis.aclose()

    assert later.board.snapshot() == {"broken": OPEN, "limited": CLOSED}
    assert later.board.held_for("limited") == 12


async def test_loading_reads_ten_thousand_fields_at_most(prefix):
    client = redis_client()
    entries = {
        f"breaker:d{n}": json.dumps({"deployment": f"d{n}", "state": OPEN, "until": WALL_START + 60, "process": "z"})
        for n in range(10_500)
    }
    await client.hset(f"{prefix}:breakers", mapping=entries)
    await client.aclose()

    later = make_process(prefix, "later")
    await later.shared.load()
    await later.shared.redis.aclose()

    assert len(later.board.snapshot()) == 10_000


async def test_garbled_messages_on_the_channel_are_ignored(prefix):
    b = make_process(prefix, "b")
    async with running(b) as listener:
        client = redis_client()
        for garbage in [
            "",
            "{",
            "null",
            "[" * 1000,
            '{"deployment": 3}',
            "x" * 5000,
            '{"deployment": "gpt", "state": "open"}',
        ]:
            await client.publish(f"{prefix}:breakers", garbage)
        good = {"deployment": "gpt", "state": OPEN, "until": WALL_START + 30, "process": "a"}
        await client.publish(f"{prefix}:breakers", json.dumps(good))
        await client.aclose()

        await eventually(lambda: b.board.state("gpt", POLICY) == OPEN)

        assert b.board.snapshot() == {"gpt": OPEN}
        assert not listener.done()


async def test_changes_that_could_not_be_published_are_published_later(prefix):
    a = make_process(prefix, "a", url=f"redis://127.0.0.1:{free_port()}/6")  # nothing listens there
    open_here(a, "gpt")
    with pytest.raises(redis.ConnectionError):
        await a.shared.publish_pending()
    await a.shared.redis.aclose()

    a.shared.redis = redis_client()
    await a.shared.publish_pending()
    stored = await a.shared.redis.hget(f"{prefix}:breakers", "breaker:gpt")
    await a.shared.redis.aclose()

    assert json.loads(stored) == {"deployment": "gpt", "state": OPEN, "until": WALL_START + 30, "process": "a"}


async def test_without_redis_the_board_keeps_working_and_the_outage_is_said_once(prefix, caplog):
    caplog.set_level(logging.DEBUG, logger="routing.engine.breaker")
    alone = make_process(prefix, "alone", url=f"redis://127.0.0.1:{free_port()}/6")  # nothing listens there
    async with running(alone, wait_connected=False) as listener:
        await eventually(lambda: alone.shared.redis_errors >= 4)  # back-off 0.01, 0.02, 0.04 s...
        open_here(alone, "gpt")
        alone.board.hold("other", 5)

        assert alone.board.is_open("gpt", POLICY)
        assert alone.board.is_open("other", POLICY)
        assert not listener.done()
        assert not alone.shared.is_connected

    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "not shared through Redis" in warnings[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)


async def test_a_hold_already_over_when_published_is_not_published(prefix):
    wall = FakeClock(WALL_START)
    board = BreakerBoard(clock=FakeClock(500.0), wall=wall)
    shared = SharedBreakers(board, redis_client=redis_client(), prefix=prefix, process_id="a")
    board.hold("over", 5)
    board.hold("current", 60)
    wall.now += 10  # Redis was away meanwhile

    await shared.publish_pending()
    stored = await shared.redis.hkeys(f"{prefix}:breakers")
    await shared.redis.aclose()

    assert stored == [b"held:current"]
