"""The latency board (EWMA per deployment, expiry, merging the others' view) and its sharing through Redis."""

import asyncio
import json
import logging
import math
import uuid

import pytest
import redis
import redis.asyncio
from django.conf import settings
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from routing.engine import latency
from routing.engine.latency import LatencyBoard, SharedLatency, blend
from tests.redis_server import IS_INSTALLED, RedisServer
from tests.upstreams.server import free_port


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- the board ---------------------------------------------------------------------------------------------------


def test_the_first_sample_is_the_estimate_and_later_ones_move_it_by_alpha():
    board = LatencyBoard(alpha=0.2, clock=FakeClock())
    board.observe("a", latency_ms=100)
    assert board.estimate_ms("a") == 100

    board.observe("a", latency_ms=200)
    assert board.estimate_ms("a") == pytest.approx(120)  # 100 + 0.2 * (200 - 100)
    board.observe("a", latency_ms=200)
    assert board.estimate_ms("a") == pytest.approx(136)  # 120 + 0.2 * (200 - 120)
    assert board.export() == {"a": (pytest.approx(136), None, 3)}


def test_a_deployment_never_observed_has_no_estimate():
    assert LatencyBoard().estimate_ms("nobody") is None


def test_time_to_first_token_has_its_own_ewma_used_for_streams():
    board = LatencyBoard(alpha=0.5, clock=FakeClock())
    board.observe("a", latency_ms=1000)  # a whole call first: no first-token time yet
    board.observe("a", latency_ms=1000, ttfb_ms=100)
    board.observe("a", latency_ms=2000, ttfb_ms=300)

    assert board.estimate_ms("a", stream=True) == pytest.approx(200)  # 100, then 100 + 0.5 * 200
    assert board.estimate_ms("a") == pytest.approx(1500)


def test_a_stream_estimate_falls_back_to_latency_without_first_token_times():
    board = LatencyBoard(clock=FakeClock())
    board.observe("a", latency_ms=700)
    assert board.estimate_ms("a", stream=True) == 700


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0])
def test_a_nonsense_latency_is_not_observed(bad):
    board = LatencyBoard(clock=FakeClock())
    board.observe("a", latency_ms=100, ttfb_ms=50)
    board.observe("a", latency_ms=bad)
    board.observe("a", latency_ms=100, ttfb_ms=bad)

    assert board.estimate_ms("a") == 100
    assert board.estimate_ms("a", stream=True) == 50
    assert board.export()["a"][2] == 2


def test_an_estimate_expires_when_its_deployment_has_not_been_measured_for_max_age():
    # A slow deployment the strategy stopped choosing must become unknown again, so exploration measures it anew.
    clock = FakeClock()
    board = LatencyBoard(clock=clock, max_age_s=300)
    board.observe("slow", latency_ms=5000)

    clock.now += 300
    assert board.estimate_ms("slow") == 5000
    clock.now += 1
    assert board.estimate_ms("slow") is None
    assert board.export() == {}

    board.observe("slow", latency_ms=80)
    assert board.estimate_ms("slow") == 80  # a new start, not an EWMA dragged by the old 5 s
    assert board.export()["slow"][2] == 1


def test_an_alpha_outside_zero_to_one_is_refused():
    for alpha in (0, -0.1, 1.5):
        with pytest.raises(ValueError):
            LatencyBoard(alpha=alpha)


def test_merging_blends_the_others_view_with_this_process_by_samples():
    board = LatencyBoard(clock=FakeClock())
    board.observe("a", latency_ms=100, ttfb_ms=10)

    board.merge({"a": (200.0, 50.0, 3), "b": (400.0, None, 2)})

    assert board.estimate_ms("a") == pytest.approx(175)  # (100 * 1 + 200 * 3) / 4
    assert board.estimate_ms("a", stream=True) == pytest.approx(40)
    assert board.estimate_ms("b") == 400


def test_the_board_shares_only_its_own_observations():
    # Were the merged view exported too, it would come back to its sender and count twice, then four times...
    board = LatencyBoard(clock=FakeClock())
    board.observe("a", latency_ms=100)
    board.merge({"a": (300.0, None, 5), "b": (400.0, None, 2)})

    assert board.export() == {"a": (100, None, 1)}


def test_a_merge_replaces_the_view_merged_before():
    board = LatencyBoard(clock=FakeClock())
    board.merge({"a": (300.0, None, 5)})
    board.merge({"b": (400.0, None, 2)})

    assert board.estimate_ms("a") is None
    assert board.estimate_ms("b") == 400


def test_the_merged_view_expires_when_no_merge_refreshes_it():
    clock = FakeClock()
    board = LatencyBoard(clock=clock, max_age_s=60)
    board.merge({"a": (300.0, None, 5)})

    clock.now += 61
    assert board.estimate_ms("a") is None


def test_a_merge_ignores_malformed_entries():
    board = LatencyBoard(clock=FakeClock())
    board.merge(
        {
            "nan": (math.nan, None, 3),
            "no-samples": (100.0, None, 0),
            "short": (100.0, None),
            "ttfb": (100.0, "fast", 1),
            "x" * 151: (100.0, None, 1),
            "good": (250.0, 20.0, 4),
        }
    )
    assert [d for d in ("nan", "no-samples", "short", "ttfb", "x" * 151) if board.estimate_ms(d) is not None] == []
    assert board.estimate_ms("good") == 250


def test_blending_in_steps_gives_the_latency_blending_everyone_at_once_does():
    a, b, c = (100.0, None, 1), (200.0, None, 3), (400.0, None, 4)
    at_once = blend([a, b, c])
    assert blend([a, blend([b, c])]) == pytest.approx(at_once)
    assert at_once == pytest.approx(((100 + 600 + 1600) / 8, None, 8))
    assert blend([]) is None


def test_first_token_times_blend_among_the_estimates_that_have_one():
    assert blend([(100.0, 10.0, 1), (200.0, None, 3), (400.0, 40.0, 4)]) == pytest.approx((287.5, 34.0, 8))


# --- sharing through Redis ---------------------------------------------------------------------------------------


@pytest.fixture
def redis_url():
    """This run's Redis (REDIS_URL: db 5 on PostgreSQL + Redis), else one of the test's own, else skip."""
    if settings.REDIS_URL:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=0.5)
        try:
            client.ping()
        except redis.RedisError:
            pytest.skip("REDIS_URL does not answer")
        finally:
            client.close()
        yield settings.REDIS_URL
    elif IS_INSTALLED:
        with RedisServer() as server:
            yield server.url
    else:
        pytest.skip("no REDIS_URL and no redis-server to start")


@pytest.fixture
async def client(redis_url):
    client = redis.asyncio.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    yield client
    await client.aclose()


@pytest.fixture
def prefix(redis_url):
    name = f"test-{uuid.uuid4().hex}"
    yield name
    cleanup = redis.Redis.from_url(redis_url)
    cleanup.delete(f"{name}:latency")
    cleanup.close()


def sharing(board, client, prefix, process_id, **options) -> SharedLatency:
    return SharedLatency(board, redis_client=client, prefix=prefix, process_id=process_id, **options)


@pytest.mark.anyio
async def test_a_board_learns_another_process_estimate_after_one_sync_each(client, prefix):
    board_a, board_b = LatencyBoard(clock=FakeClock()), LatencyBoard(clock=FakeClock())
    board_a.observe("cheap-llama", latency_ms=312, ttfb_ms=90)
    assert board_b.estimate_ms("cheap-llama") is None

    await sharing(board_a, client, prefix, "a").sync_once()
    await sharing(board_b, client, prefix, "b").sync_once()

    assert board_b.estimate_ms("cheap-llama") == pytest.approx(312)
    assert board_b.estimate_ms("cheap-llama", stream=True) == pytest.approx(90)
    assert board_b.export() == {}  # learnt, not observed


@pytest.mark.anyio
async def test_shared_boards_converge_on_the_cluster_blend_and_stay_there(client, prefix):
    board_a, board_b = LatencyBoard(clock=FakeClock()), LatencyBoard(clock=FakeClock())
    board_a.observe("d", latency_ms=100)
    board_b.observe("d", latency_ms=300)
    for _ in range(3):
        board_b.observe("d", latency_ms=300)  # b has seen four calls, a one
    share_a, share_b = sharing(board_a, client, prefix, "a"), sharing(board_b, client, prefix, "b")

    for _ in range(5):  # syncing again and again must not count anyone's view twice
        await share_a.sync_once()
        await share_b.sync_once()
        await share_a.sync_once()
        assert board_a.estimate_ms("d") == pytest.approx(260)  # (100 * 1 + 300 * 4) / 5
        assert board_b.estimate_ms("d") == pytest.approx(260)


@pytest.mark.anyio
async def test_the_hash_holds_one_field_per_deployment_and_process_and_expires(client, prefix):
    board = LatencyBoard(clock=FakeClock())
    board.observe("d", latency_ms=120)
    share = sharing(board, client, prefix, "host-1:42", interval_s=1.0, wall_clock=lambda: 5000.0)

    await share.sync_once()

    stored = await client.hgetall(f"{prefix}:latency")
    assert list(stored) == [b"d@host-1:42"]
    assert json.loads(stored[b"d@host-1:42"]) == {
        "deployment": "d",
        "process": "host-1:42",
        "latency_ms": 120,
        "ttfb_ms": None,
        "samples": 1,
        "at": 5000.0,
    }
    assert 0 < await client.ttl(f"{prefix}:latency") <= 30


@pytest.mark.anyio
async def test_a_process_that_stopped_writing_is_ignored_then_deleted(client, prefix):
    now = {"t": 10_000.0}
    board_a, board_b = LatencyBoard(clock=FakeClock()), LatencyBoard(clock=FakeClock())
    board_a.observe("d", latency_ms=999)
    await sharing(board_a, client, prefix, "gone", wall_clock=lambda: now["t"]).sync_once()
    share_b = sharing(board_b, client, prefix, "b", wall_clock=lambda: now["t"])

    now["t"] += share_b.stale_after_s + 1
    await share_b.sync_once()

    assert board_b.estimate_ms("d") is None
    assert await client.hexists(f"{prefix}:latency", "d@gone") == 0


@pytest.mark.anyio
async def test_garbage_in_the_hash_is_ignored_and_left_alone(client, prefix):
    key = f"{prefix}:latency"
    good = {"deployment": "d", "process": "a", "latency_ms": 200, "ttfb_ms": None, "samples": 2, "at": 1e12}
    await client.hset(
        key,
        mapping={
            "junk": b"\xff\xfe not json",
            "list": "[1, 2]",
            "nan": json.dumps(good | {"latency_ms": float("nan")}),
            "negative-samples": json.dumps(good | {"samples": -4}),
            "no-process": json.dumps(good | {"process": 7}),
            "good": json.dumps(good),
        },
    )
    board = LatencyBoard(clock=FakeClock())

    await sharing(board, client, prefix, "b").sync_once()

    assert board.estimate_ms("d") == 200
    assert await client.hlen(key) == 6  # not ours to delete: perhaps another version's format


@pytest.mark.anyio
async def test_at_most_max_fields_read_are_read(client, prefix, monkeypatch):
    monkeypatch.setattr(latency, "MAX_FIELDS_READ", 5)
    writer = LatencyBoard(clock=FakeClock())
    for n in range(40):
        writer.observe(f"d{n}", latency_ms=100 + n)
    await sharing(writer, client, prefix, "a").sync_once()
    board = LatencyBoard(clock=FakeClock())

    await sharing(board, client, prefix, "b").sync_once()

    assert sum(board.estimate_ms(f"d{n}") is not None for n in range(40)) == 5


@pytest.mark.anyio
async def test_a_redis_outage_is_logged_once_and_sharing_resumes_after_it(client, prefix, caplog):
    caplog.set_level(logging.INFO, logger=latency.log.name)
    board = LatencyBoard(clock=FakeClock())
    board.observe("d", latency_ms=100)
    # Nothing listens there; no retries inside the client, or each sync would back off for seconds.
    closed = redis.asyncio.Redis(port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    share = sharing(board, closed, prefix, "a")

    for _ in range(3):
        await share.sync_once()  # never raises
    assert board.estimate_ms("d") == 100

    share.redis = client
    await share.sync_once()
    await closed.aclose()

    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert len(said) == 2
    assert said[0][0] == logging.WARNING and said[0][1].startswith("latency sharing paused: Redis failed")
    assert said[1] == (logging.INFO, "latency sharing works again")
    assert await client.hexists(f"{prefix}:latency", "d@a") == 1


@pytest.mark.anyio
async def test_run_forever_keeps_syncing_after_an_unexpected_error(caplog, monkeypatch):
    calls = {"n": 0}
    third_call = asyncio.Event()

    async def sync_failing_twice(self):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise KeyError("a bug")
        third_call.set()

    monkeypatch.setattr(SharedLatency, "sync_once", sync_failing_twice)
    share = SharedLatency(LatencyBoard(), redis_client=None, prefix="p", interval_s=0, process_id="a")
    task = asyncio.get_running_loop().create_task(share.run_forever())
    try:
        await asyncio.wait_for(third_call.wait(), timeout=10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    errors = [r for r in caplog.records if r.name == latency.log.name and r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info
