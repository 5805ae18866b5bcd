"""The keys in a process's memory: looked up once, unknown ones remembered, lookups capped, memory bounded."""

import asyncio

import pytest

from routing.control_plane.keys import KeyCache, LookupsThrottled
from tests.factories import principal

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Database:
    """Stands in for the keys table: counts the lookups the cache sends it."""

    def __init__(self, *principals) -> None:
        self.by_hash = {p.secret_hash: p for p in principals}
        self.lookups: list[str] = []  # every hash asked about
        self.queries: list[list[str]] = []  # what each query asked
        self.gate: asyncio.Event | None = None

    async def lookup(self, secret_hashes: list[str]):
        self.lookups.extend(secret_hashes)
        self.queries.append(list(secret_hashes))
        if self.gate is not None:
            await self.gate.wait()
        return {h: self.by_hash[h] for h in secret_hashes if h in self.by_hash}


def key(n: int, **fields):
    return principal(key_id=n, key_prefix=f"sk-tw-{n:08d}", secret_hash=f"hash-{n}", **fields)


def cache_over(database: Database, clock: Clock, *, size=100, ttl=30.0, per_s=1000.0) -> KeyCache:
    return KeyCache(database.lookup, size=size, negative_ttl_s=ttl, lookups_per_s=per_s, clock=clock)


async def test_a_key_is_looked_up_once_then_served_from_memory():
    database, clock = Database(key(1)), Clock()
    cache = cache_over(database, clock)
    for _ in range(3):
        assert await cache.principal("sk-tw-00000001", "hash-1") == key(1)
    assert database.lookups == ["hash-1"]
    # A wrong secret for a prefix in memory is refused without asking: prefixes are unique.
    assert await cache.principal("sk-tw-00000001", "hash-other") is None
    assert database.lookups == ["hash-1"]


async def test_an_unknown_key_is_remembered_until_its_time_is_up():
    database, clock = Database(), Clock()
    cache = cache_over(database, clock, ttl=30.0)
    for _ in range(5):
        assert await cache.principal("sk-tw-junk0001", "junk") is None
    assert database.lookups == ["junk"]
    clock.now += 31
    assert await cache.principal("sk-tw-junk0001", "junk") is None
    assert database.lookups == ["junk", "junk"]
    assert (cache.counts["unknown"], cache.counts["negative"]) == (2, 4)


async def test_lookups_past_the_cap_are_refused_but_keys_in_memory_are_not():
    database, clock = Database(key(1)), Clock()
    cache = cache_over(database, clock, per_s=3)
    assert await cache.principal("sk-tw-00000001", "hash-1") == key(1)
    await cache.principal("sk-tw-junk0001", "junk-1")
    await cache.principal("sk-tw-junk0002", "junk-2")
    with pytest.raises(LookupsThrottled):
        await cache.principal("sk-tw-junk0003", "junk-3")
    assert await cache.principal("sk-tw-00000001", "hash-1") == key(1)  # still served
    assert len(database.lookups) == 3
    clock.now += 1  # the bucket refills at the cap's rate
    await cache.principal("sk-tw-junk0003", "junk-3")
    assert len(database.lookups) == 4 and cache.counts["throttled"] == 1


async def test_the_same_unknown_key_presented_at_once_is_looked_up_once():
    database, clock = Database(key(1)), Clock()
    database.gate = asyncio.Event()
    cache = cache_over(database, clock)
    calls = [asyncio.create_task(cache.principal("sk-tw-00000001", "hash-1")) for _ in range(10)]
    await asyncio.sleep(0)
    database.gate.set()
    assert await asyncio.gather(*calls) == [key(1)] * 10
    assert database.lookups == ["hash-1"]


async def test_keys_missed_at_the_same_moment_are_looked_up_in_one_query():
    database, clock = Database(key(1), key(2)), Clock()
    cache = cache_over(database, clock)
    found = await asyncio.gather(
        cache.principal("sk-tw-00000001", "hash-1"),
        cache.principal("sk-tw-00000002", "hash-2"),
        *(cache.principal(f"sk-tw-junk{n:04d}", f"junk-{n}") for n in range(48)),
    )
    assert found[:2] == [key(1), key(2)] and found[2:] == [None] * 48
    assert len(database.queries) == 1 and len(database.queries[0]) == 50


async def test_misses_arriving_during_a_lookup_wait_for_the_next_one_together():
    database, clock = Database(), Clock()
    database.gate = asyncio.Event()
    cache = cache_over(database, clock)
    first = asyncio.create_task(cache.principal("sk-tw-junk0000", "junk-0"))
    await asyncio.sleep(0.001)
    later = [asyncio.create_task(cache.principal(f"sk-tw-junk{n:04d}", f"junk-{n}")) for n in range(1, 30)]
    await asyncio.sleep(0.001)
    database.gate.set()
    await asyncio.gather(first, *later)
    assert [len(q) for q in database.queries] == [1, 29]


async def test_a_failed_lookup_fails_its_callers_and_the_next_one_tries_again():
    database, clock = Database(key(1)), Clock()
    cache = cache_over(database, clock)
    real = database.lookup

    async def broken(hashes):
        raise ConnectionError("database away")

    database.lookup = broken
    cache._lookup = broken
    with pytest.raises(ConnectionError):
        await cache.principal("sk-tw-00000001", "hash-1")
    cache._lookup = real
    assert await cache.principal("sk-tw-00000001", "hash-1") == key(1)


async def test_memory_holds_at_most_size_keys_least_recently_used_out():
    database, clock = Database(key(1), key(2), key(3)), Clock()
    cache = cache_over(database, clock, size=2)
    for n in (1, 2, 1, 3):
        await cache.principal(f"sk-tw-{n:08d}", f"hash-{n}")
    assert len(cache) == 2 and cache.key_ids(every=True) == {1, 3}
    await cache.principal("sk-tw-00000002", "hash-2")
    assert database.lookups == ["hash-1", "hash-2", "hash-3", "hash-2"]


async def test_a_hash_found_under_another_keys_prefix_is_not_that_key():
    database, clock = Database(key(1)), Clock()
    cache = cache_over(database, clock)
    assert await cache.principal("sk-tw-99999999", "hash-1") is None
    # What was found is kept as what it is: key 1, under its own prefix only.
    assert cache.cached("sk-tw-99999999") is None and cache.cached("sk-tw-00000001") == key(1)


async def test_a_lookup_that_overlapped_a_change_is_used_but_not_kept():
    database, clock = Database(key(1)), Clock()
    database.gate = asyncio.Event()
    cache = cache_over(database, clock)
    call = asyncio.create_task(cache.principal("sk-tw-00000001", "hash-1"))
    await asyncio.sleep(0)
    cache.begin_change()  # e.g. this key's revocation is being read
    database.gate.set()
    assert await call == key(1)
    cache.finish_change({1: key(1, is_revoked=True)})
    assert len(cache) == 0  # not kept: the next call looks it up again and sees the revocation
    database.by_hash["hash-1"] = key(1, is_revoked=True)
    assert (await cache.principal("sk-tw-00000001", "hash-1")).is_revoked


async def test_changes_replace_keys_in_memory_and_drop_deleted_ones():
    database, clock = Database(key(1, team_id=7), key(2, team_id=8)), Clock()
    cache = cache_over(database, clock)
    await cache.principal("sk-tw-00000001", "hash-1")
    await cache.principal("sk-tw-00000002", "hash-2")
    assert cache.key_ids(teams=[7]) == {1} and cache.key_ids(keys=[2, 99]) == {2}
    cache.begin_change()
    cache.finish_change({1: key(1, team_id=7, rpm_limit=5), 2: None, 99: key(99)})
    assert cache.cached("sk-tw-00000001").rpm_limit == 5
    assert cache.cached("sk-tw-00000002") is None and cache.cached("sk-tw-00000099") is None


async def test_keys_read_ahead_are_kept_behind_keys_in_use_and_only_if_nothing_changed_meanwhile():
    database, clock = Database(key(1)), Clock()
    cache = cache_over(database, clock, size=3)
    await cache.principal("sk-tw-00000001", "hash-1")
    generation = cache.generation
    cache.begin_change()
    cache.finish_change()
    assert cache.preload([key(2)], generation=generation) is None  # read before a change: may be stale

    assert cache.preload([key(2), key(3), key(4)], generation=cache.generation) == 2  # room for two
    database.by_hash["hash-5"] = key(5)
    await cache.principal("sk-tw-00000005", "hash-5")
    # The least recent read-ahead key (3, put last at the front) goes first; the key in use stays.
    assert cache.key_ids(every=True) == {1, 2, 5}
