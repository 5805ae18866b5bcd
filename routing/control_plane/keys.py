"""The keys one gateway process is using, looked up on demand: a key not in memory is looked up once by its hash
(off the event loop) and kept, least recently used first out. Unknown hashes are remembered for a while, and
lookups of keys not in memory are capped per second, so a flood of made-up keys costs the database at most the
cap. Imports no Django: the lookup is given to it.

Keys missed at about the same time are looked up together, in one query: the first miss after a quiet spell
goes at once (a new key's first call waits for one indexed read), and while a lookup runs the next misses
gather for the one after, at most one every BATCH_WINDOW_S. So a flood costs the database a bounded number of
queries, not one per made-up key.
"""

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable

from core.values import Principal

# Looks up many hashes at once: those found, by hash.
Lookup = Callable[[list[str]], Awaitable[dict[str, Principal]]]

BATCH_WINDOW_S = 0.01
MAX_BATCH = 500


class LookupsThrottled(Exception):
    """More keys not in memory were presented this second than the database may be asked about."""


class KeyCache:
    def __init__(
        self,
        lookup: Lookup,
        *,
        size: int,
        negative_ttl_s: float,
        lookups_per_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._size = size
        self._negative_ttl_s = negative_ttl_s
        self._rate = lookups_per_s
        self._clock = clock
        self._by_prefix: OrderedDict[str, Principal] = OrderedDict()
        self._prefix_by_id: dict[int, str] = {}
        self._ids_by_team: dict[int, set[int]] = {}
        self._unknown: OrderedDict[str, float] = OrderedDict()  # secret hash -> when to forget it
        self._in_flight: dict[str, asyncio.Future] = {}
        self._pending: list[str] = []  # hashes waiting for the next lookup
        self._batcher: asyncio.Task | None = None
        self._tokens = float(lookups_per_s)
        self._tokens_at = clock()
        # A lookup that overlapped the applying of a change is used but not kept: it may have read the row
        # before the change committed, and the change's reload did not see it in memory.
        self._generation = 0
        self._applying = False
        self.counts = {"hit": 0, "found": 0, "unknown": 0, "negative": 0, "throttled": 0}

    def __len__(self) -> int:
        return len(self._by_prefix)

    def cached(self, prefix: str) -> Principal | None:
        principal = self._by_prefix.get(prefix)
        if principal is not None:
            self._by_prefix.move_to_end(prefix)
        return principal

    async def principal(self, prefix: str, secret_hash: str) -> Principal | None:
        """The key with this prefix and hash, or None when there is none. Raises LookupsThrottled over the cap."""
        principal = self.cached(prefix)
        if principal is not None:
            self.counts["hit"] += 1
            # Prefixes are unique: a cached prefix with another hash is a wrong secret, no lookup needed.
            return principal if principal.secret_hash == secret_hash else None
        forget_at = self._unknown.get(secret_hash)
        if forget_at is not None:
            if forget_at > self._clock():
                self.counts["negative"] += 1
                return None
            del self._unknown[secret_hash]
        in_flight = self._in_flight.get(secret_hash)
        if in_flight is None:
            if not self._take_token():
                self.counts["throttled"] += 1
                raise LookupsThrottled
            in_flight = self._in_flight[secret_hash] = asyncio.get_running_loop().create_future()
            self._pending.append(secret_hash)
            if self._batcher is None or self._batcher.done():
                self._batcher = asyncio.get_running_loop().create_task(self._look_up_pending(), name="key-lookups")
        # Shielded: a caller that goes away does not cancel the lookup others may be waiting for.
        found = await asyncio.shield(in_flight)
        # The hash covers the whole key, prefix included; a match under another prefix is not this key.
        return found if found is not None and found.key_prefix == prefix else None

    async def _look_up_pending(self) -> None:
        await asyncio.sleep(0)  # misses of this same moment join the first lookup
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            generation = self._generation
            try:
                found = await self._lookup(batch)
            except BaseException as exc:
                for secret_hash in batch:
                    future = self._in_flight.pop(secret_hash)
                    future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("lookup cancelled"))
                    future.exception()  # retrieved: no warning when every waiter has gone
                if not isinstance(exc, Exception):
                    raise
                continue
            keep = generation == self._generation and not self._applying
            for secret_hash in batch:
                principal = found.get(secret_hash)
                if keep:
                    if principal is None:
                        self._remember_unknown(secret_hash)
                    else:
                        self._keep(principal)
                self.counts["found" if principal is not None else "unknown"] += 1
                self._in_flight.pop(secret_hash).set_result(principal)
            if self._pending:
                await asyncio.sleep(BATCH_WINDOW_S)  # under a flood: gather, at most one query per window

    async def aclose(self) -> None:
        if self._batcher is not None:
            self._batcher.cancel()
            await asyncio.gather(self._batcher, return_exceptions=True)

    def _take_token(self) -> bool:
        now = self._clock()
        self._tokens = min(self._rate, self._tokens + (now - self._tokens_at) * self._rate)
        self._tokens_at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def _remember_unknown(self, secret_hash: str) -> None:
        self._unknown[secret_hash] = self._clock() + self._negative_ttl_s
        self._unknown.move_to_end(secret_hash)
        # Bounded like the positive side: the oldest guesses go first.
        while len(self._unknown) > self._size:
            self._unknown.popitem(last=False)

    def _keep(self, principal: Principal) -> None:
        self._drop(principal.key_id)
        self._by_prefix[principal.key_prefix] = principal
        self._prefix_by_id[principal.key_id] = principal.key_prefix
        self._ids_by_team.setdefault(principal.team_id, set()).add(principal.key_id)
        while len(self._by_prefix) > self._size:
            _, oldest = self._by_prefix.popitem(last=False)
            self._forget_indexes(oldest)

    def _drop(self, key_id: int) -> None:
        prefix = self._prefix_by_id.get(key_id)
        if prefix is not None:
            self._forget_indexes(self._by_prefix.pop(prefix))

    def _forget_indexes(self, principal: Principal) -> None:
        self._prefix_by_id.pop(principal.key_id, None)
        team = self._ids_by_team.get(principal.team_id)
        if team is not None:
            team.discard(principal.key_id)
            if not team:
                del self._ids_by_team[principal.team_id]

    # --- what the change feed calls ---------------------------------------------------------------------------

    def key_ids(self, *, teams: Iterable[int] = (), keys: Iterable[int] = (), every: bool = False) -> set[int]:
        """Of these keys and these teams' keys, the ones in memory (all of them with every=True)."""
        if every:
            return set(self._prefix_by_id)
        found = {key_id for key_id in keys if key_id in self._prefix_by_id}
        for team_id in teams:
            found |= self._ids_by_team.get(team_id, set())
        return found

    @property
    def size(self) -> int:
        return self._size

    @property
    def generation(self) -> int:
        return self._generation

    def preload(self, principals: Iterable[Principal], *, generation: int) -> int | None:
        """Keep keys read ahead of their first call (a warm start), each put first in line for eviction, behind
        the keys in use; unless a change was applied since `generation` was read: then they may be stale, and
        are left to be looked up."""
        if generation != self._generation or self._applying:
            return None  # read them again
        kept = 0
        for principal in principals:
            if principal.key_prefix not in self._by_prefix and len(self._by_prefix) < self._size:
                self._keep(principal)
                self._by_prefix.move_to_end(principal.key_prefix, last=False)  # behind keys already in use
                kept += 1
        return kept

    def begin_change(self) -> None:
        """Changes are about to be read: lookups under way or made until finish_change() are not kept."""
        self._generation += 1
        self._applying = True

    def finish_change(self, principals: dict[int, Principal | None] | None = None) -> None:
        """New values for keys in memory (None: the key is gone); also ends a change that failed half way."""
        for key_id, principal in (principals or {}).items():
            if principal is None:
                self._drop(key_id)
            elif key_id in self._prefix_by_id:
                self._keep(principal)
        self._generation += 1
        self._applying = False

    def forget_unknown(self) -> None:
        self._unknown.clear()
