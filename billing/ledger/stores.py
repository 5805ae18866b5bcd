"""Where counters live. Each store reserves all of a request's counters atomically — all or none — and
settles them to the real amounts later.

- RedisStore: one Lua script per reserve and per settle, so every gateway process shares exact totals. Each
  script first checks Redis's epoch (EPOCH_KEY), so a Redis that restarted empty is noticed on the next call.
- DatabaseStore: the same under row locks (select_for_update; SQLite serialises writers), on the DB thread.
  Used for budgets on the embedded default, and for everything when Redis is unreachable.
- MemoryStore: this process only. Rate windows on the embedded default (one process), never budgets.
"""

import asyncio
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import transaction

from billing.ledger.counters import Counter, Refusal, ticks_to_usd, usd_to_ticks
from billing.models import BudgetCounter, RateWindow
from config.db_thread import run_in_db

log = logging.getLogger(__name__)

# Each counter hash holds s (settled), r (reserved by all processes) and r:<owner> (reserved by one process).
# A process keeps its owner lease (KEY_PREFIX_OWNER + owner) alive while it runs; when it dies without settling,
# the lease expires and RELEASE_LUA gives its reservations back (billing/budgets.py: release_stale_reservations).

# Every script that counts checks Redis's epoch first: a random id kept in EPOCH_KEY, set by the first script to
# find it missing. A Redis that restarted empty (or was flushed) between two calls has a new one, and the caller
# must carry its rate counts into it before counting there (billing/ledger/tally.py).

# KEYS: n counter hashes, m hashes to carry counts into, the owner's lease, the epoch key. ARGV: n, m; limit (-1:
# none), amount, ttl per counter; delta, ttl per carry; the owner, the lease's ttl, the epoch the caller expects,
# the epoch to set if there is none. Returns {-1, epoch} if Redis's epoch is another (nothing counted), else
# {0, used after reserving...} or {index of the refusing counter, its used}; carries are added either way.
RESERVE_LUA = """
local n, m = tonumber(ARGV[1]), tonumber(ARGV[2])
local tail = 2 + 3 * n + 2 * m
local epoch = redis.call('GET', KEYS[n + m + 2])
if not epoch then
  epoch = ARGV[tail + 4]
  redis.call('SET', KEYS[n + m + 2], epoch)
end
if epoch ~= ARGV[tail + 3] then
  return {-1, epoch}
end
for j = 1, m do
  redis.call('HINCRBY', KEYS[n + j], 's', ARGV[2 + 3 * n + 2 * j - 1])
  redis.call('EXPIRE', KEYS[n + j], ARGV[2 + 3 * n + 2 * j])
end
for i = 1, n do
  local limit = tonumber(ARGV[3 * i])
  if limit >= 0 then
    local v = redis.call('HMGET', KEYS[i], 's', 'r')
    local used = (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0)
    if used + tonumber(ARGV[3 * i + 1]) > limit then
      return {i, tostring(used)}
    end
  end
end
local mine = 'r:' .. ARGV[tail + 1]
redis.call('SET', KEYS[n + m + 1], '1', 'EX', ARGV[tail + 2])
local out = {0}
for i = 1, n do
  local r = redis.call('HINCRBY', KEYS[i], 'r', ARGV[3 * i + 1])
  redis.call('HINCRBY', KEYS[i], mine, ARGV[3 * i + 1])
  local s = redis.call('HGET', KEYS[i], 's') or '0'
  redis.call('EXPIRE', KEYS[i], ARGV[3 * i + 2])
  out[#out + 1] = tostring(tonumber(s) + r)
end
return out
"""

# KEYS: counter hashes, then the epoch key. ARGV: reserved, actual per counter; then the owner and the epoch the
# reservation was made in. Gives back no more than the owner still holds: what was released while its lease had
# lapsed is not given back twice. Returns {-1} if the reservation was lost with a restarted Redis (nothing
# settled: the caller's tally carries the difference), else the settled total of each.
SETTLE_LUA = """
local n = #KEYS - 1
if redis.call('GET', KEYS[n + 1]) ~= ARGV[2 * n + 2] then
  return {-1}
end
local mine = 'r:' .. ARGV[2 * n + 1]
local out = {}
for i = 1, n do
  local held = tonumber(redis.call('HGET', KEYS[i], mine) or '0')
  local back = math.min(held, tonumber(ARGV[2 * i - 1]))
  if back > 0 then
    redis.call('HINCRBY', KEYS[i], 'r', -back)
  end
  if held - back <= 0 then
    redis.call('HDEL', KEYS[i], mine)
  else
    redis.call('HINCRBY', KEYS[i], mine, -back)
  end
  out[#out + 1] = tostring(redis.call('HINCRBY', KEYS[i], 's', ARGV[2 * i]))
end
return out
"""

# KEYS: one counter hash. ARGV: the lease key prefix. Gives back what owners without a live lease reserved.
# Returns the amount released.
RELEASE_LUA = """
local released = 0
for _, name in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(name, 1, 2) == 'r:' and redis.call('EXISTS', ARGV[1] .. string.sub(name, 3)) == 0 then
    local held = tonumber(redis.call('HGET', KEYS[1], name))
    redis.call('HINCRBY', KEYS[1], 'r', -held)
    redis.call('HDEL', KEYS[1], name)
    released = released + held
  end
end
return released
"""

# ARGV: a floor per counter. Raises each settled total to at least its floor (a store taking over).
RAISE_LUA = """
for i = 1, #KEYS do
  local s = tonumber(redis.call('HGET', KEYS[i], 's') or '0')
  if s < tonumber(ARGV[i]) then
    redis.call('HINCRBY', KEYS[i], 's', tonumber(ARGV[i]) - s)
  end
end
return #KEYS
"""

KEY_PREFIX = "tollway:ledger:"
KEY_PREFIX_OWNER = "tollway:ledger-owner:"  # outside KEY_PREFIX: scans of counters never meet a lease
EPOCH_KEY = "tollway:ledger-epoch"  # outside KEY_PREFIX too; never expires, so only a restart or flush loses it


@dataclass(frozen=True, slots=True)
class NewEpoch:
    """Redis's epoch is not the one the caller counted in: it restarted empty or was flushed since."""

    epoch: str


Carry = tuple[Counter, int]  # a rate window and what to add to its settled total (billing/ledger/tally.py)


class MemoryStore:
    """Dicts on the event loop: nothing awaits between check and reserve, so each call is atomic."""

    def __init__(self) -> None:
        self._totals: dict[str, list[int]] = {}  # key -> [settled, reserved, window_end]

    def _entry(self, counter: Counter) -> list[int]:
        entry = self._totals.get(counter.key)
        if entry is None:
            entry = self._totals[counter.key] = [0, 0, int(counter.window_end)]
        return entry

    async def reserve(self, counters: list[Counter], now: float) -> Refusal | list[int]:
        self._forget_before(now)
        for counter in counters:
            settled, reserved, _ = self._totals.get(counter.key, (0, 0, 0))
            if counter.limit is not None and settled + reserved + counter.amount > counter.limit:
                return Refusal(counter, settled + reserved)
        used = []
        for counter in counters:
            entry = self._entry(counter)
            entry[1] += counter.amount
            used.append(entry[0] + entry[1])
        return used

    async def settle(self, counters: list[Counter], actual: list[int]) -> list[int]:
        settled = []
        for counter, amount in zip(counters, actual, strict=True):
            entry = self._entry(counter)
            entry[1] -= counter.amount
            entry[0] += amount
            settled.append(entry[0])
        return settled

    def _forget_before(self, now: float) -> None:
        if len(self._totals) > 10_000:
            for key in [k for k, v in self._totals.items() if v[2] + 3600 < now]:
                del self._totals[key]


class RedisStore:
    def __init__(self, url: str, *, lease_s: float = 60.0) -> None:
        # This process's name on the counters it reserves from, and how long its lease outlives a heartbeat.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.lease_s = max(1, int(lease_s))
        self._heartbeat: asyncio.Task | None = None
        self.epoch = ""  # the epoch this process last counted in ("": none yet)
        from redis import asyncio as redis_asyncio

        # A bounded pool that waits for a free connection: under a burst, requests queue for Redis rather than
        # fail over to the database. A Redis that refuses connections hands over at once (connect timeout).
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError

        # One immediate retry on a fresh connection: after Redis restarts, pooled connections are dead and the
        # first command on each fails before it is sent; that must not count as Redis being down.
        pool = redis_asyncio.BlockingConnectionPool.from_url(
            url,
            max_connections=64,
            timeout=5,
            socket_timeout=5,
            socket_connect_timeout=0.5,
            retry=Retry(NoBackoff(), 1),
            retry_on_error=[RedisConnectionError],
        )
        self.client = redis_asyncio.Redis(connection_pool=pool)
        self._reserve = self.client.register_script(RESERVE_LUA)
        self._settle = self.client.register_script(SETTLE_LUA)
        self._raise = self.client.register_script(RAISE_LUA)

    async def reserve_in_epoch(
        self, counters: list[Counter], carries: list[Carry], epoch: str
    ) -> Refusal | list[int] | NewEpoch:
        """Add `carries`, then reserve, if Redis is still in `epoch`; otherwise count nothing."""
        args: list[int | str] = [len(counters), len(carries)]
        for counter in counters:
            args += [-1 if counter.limit is None else counter.limit, counter.amount, counter.ttl_s()]
        for counter, delta in carries:
            args += [delta, counter.ttl_s()]
        self._keep_lease()
        result = await self._reserve(
            keys=[
                *(KEY_PREFIX + c.key for c in counters),
                *(KEY_PREFIX + c.key for c, _ in carries),
                KEY_PREFIX_OWNER + self.owner,
                EPOCH_KEY,
            ],
            # A fresh proposal each time: the epoch this process set before a restart must not come back.
            args=[*args, self.owner, self.lease_s, epoch or "-", secrets.token_hex(8)],
        )
        if int(result[0]) == -1:
            return NewEpoch(result[1].decode() if isinstance(result[1], bytes) else str(result[1]))
        if int(result[0]) != 0:
            return Refusal(counters[int(result[0]) - 1], int(result[1]))
        return [int(v) for v in result[1:]]

    async def learn_epoch(self) -> str:
        """Ask Redis for its epoch (setting one if it has none): counting nothing is refused for a wrong epoch."""
        outcome = await self.reserve_in_epoch([], [], "")
        self.epoch = outcome.epoch if isinstance(outcome, NewEpoch) else self.epoch
        return self.epoch

    async def reserve(self, counters: list[Counter], now: float) -> Refusal | list[int]:
        """Reserve in whatever epoch Redis is in (no rate counts to carry: a caller without a tally)."""
        for _ in range(3):
            outcome = await self.reserve_in_epoch(counters, [], self.epoch)
            if not isinstance(outcome, NewEpoch):
                return outcome
            self.epoch = outcome.epoch
        raise RuntimeError("Redis's ledger epoch keeps changing")

    async def settle_in_epoch(self, counters: list[Counter], actual: list[int], epoch: str) -> list[int] | NewEpoch:
        args: list[int | str] = []
        for counter, amount in zip(counters, actual, strict=True):
            args += [counter.amount, amount]
        result = await self._settle(
            keys=[*(KEY_PREFIX + c.key for c in counters), EPOCH_KEY], args=[*args, self.owner, epoch or "-"]
        )
        if result and int(result[0]) == -1:
            return NewEpoch("")
        return [int(v) for v in result]

    async def settle(self, counters: list[Counter], actual: list[int]) -> list[int]:
        outcome = await self.settle_in_epoch(counters, actual, self.epoch)
        return [] if isinstance(outcome, NewEpoch) else outcome

    def _keep_lease(self) -> None:
        """Renew the lease while this process runs, so a long stream's reservation is not taken for a dead one's.
        Every reservation renews it too (RESERVE_LUA)."""
        loop = asyncio.get_running_loop()
        if self._heartbeat is None or self._heartbeat.done() or self._heartbeat.get_loop() is not loop:
            self._heartbeat = loop.create_task(self._renew_forever())

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 4)
            try:
                await self.client.set(KEY_PREFIX_OWNER + self.owner, "1", ex=self.lease_s)
            except Exception as exc:  # Redis away: the ledger falls back; renew when it answers again
                log.debug("ledger lease not renewed: %s", exc)

    async def raise_settled(self, counters: list[Counter], floors: list[int]) -> None:
        await self._raise(keys=[KEY_PREFIX + c.key for c in counters], args=floors)

    async def read(self, counter_key: str) -> tuple[int, int]:
        settled, reserved = await self.client.hmget(KEY_PREFIX + counter_key, "s", "r")
        return int(settled or 0), int(reserved or 0)

    async def aclose(self) -> None:
        heartbeat, self._heartbeat = self._heartbeat, None
        if heartbeat is not None:
            heartbeat.cancel()
            if heartbeat.get_loop() is asyncio.get_running_loop():
                await asyncio.gather(heartbeat, return_exceptions=True)
        await self.client.aclose()


class DatabaseStore:
    """Budgets in BudgetCounter rows, rate windows in RateWindow rows, locked in key order (no deadlocks)."""

    async def reserve(self, counters: list[Counter], now: float, carries: list[Carry] = ()) -> Refusal | list[int]:
        return await run_in_db(reserve_in_database, counters, list(carries))

    async def settle(self, counters: list[Counter], actual: list[int]) -> list[int]:
        return await run_in_db(settle_in_database, counters, actual)

    async def raise_settled(self, counters: list[Counter], floors: list[int]) -> None:
        await run_in_db(raise_in_database, counters, floors)

    async def add_settled(self, counters: list[Counter], actual: list[int]) -> None:
        """Spend reserved elsewhere (in a Redis that went away before it could be settled there)."""
        await run_in_db(add_settled_in_database, counters, actual)


def _row_of(counter: Counter) -> tuple:
    # A budget's dollar and token counters share one BudgetCounter row: lock it, and save it, once.
    if counter.budget_id is not None:
        return ("budget", counter.budget_id, counter.window_start)
    return ("rate", counter.key)


def _locked_rows(counters: list[Counter]) -> dict[tuple, object]:
    """Each counter's row, created if new and locked, in a fixed order so concurrent callers cannot deadlock."""
    rows: dict[tuple, object] = {}
    for counter in sorted(counters, key=lambda c: c.key):
        identity = _row_of(counter)
        if identity in rows:
            continue
        if counter.budget_id is not None:
            period_start = datetime.fromtimestamp(counter.window_start, tz=UTC)
            row, _ = BudgetCounter.objects.get_or_create(budget_id=counter.budget_id, period_start=period_start)
            rows[identity] = BudgetCounter.objects.select_for_update().get(pk=row.pk)
        else:
            row, _ = RateWindow.objects.get_or_create(counter_key=counter.key, window_start=int(counter.window_start))
            rows[identity] = RateWindow.objects.select_for_update().get(pk=row.pk)
    return rows


def _totals(row, counter: Counter) -> tuple[int, int]:
    """(settled, reserved) of a locked row in the counter's unit."""
    if isinstance(row, RateWindow):
        return 0, row.used
    if counter.kind == "usd":
        return usd_to_ticks(row.spent_usd), usd_to_ticks(row.reserved_usd)
    return row.spent_tokens, row.reserved_tokens


def _add(row, counter: Counter, *, settled: int, reserved: int) -> None:
    """Change a locked row in memory; the caller saves each row once (a budget's two counters share one)."""
    if isinstance(row, RateWindow):
        row.used += settled + reserved
    elif counter.kind == "usd":
        row.spent_usd += ticks_to_usd(settled)
        row.reserved_usd += ticks_to_usd(reserved)
    else:
        row.spent_tokens += settled
        row.reserved_tokens += reserved


@transaction.atomic
def reserve_in_database(counters: list[Counter], carries: list[Carry] = ()) -> Refusal | list[int]:
    """Add the carried rate counts (kept even if this request is refused: they were counted elsewhere), then
    reserve all of the request's counters or none."""
    rows = _locked_rows([*counters, *(c for c, _ in carries)])
    for counter, delta in carries:
        _add(rows[_row_of(counter)], counter, settled=delta, reserved=0)
    for counter in counters:
        settled, reserved = _totals(rows[_row_of(counter)], counter)
        if counter.limit is not None and settled + reserved + counter.amount > counter.limit:
            for carried, _ in carries:
                rows[_row_of(carried)].save()
            return Refusal(counter, settled + reserved)
    used = []
    for counter in counters:
        row = rows[_row_of(counter)]
        _add(row, counter, settled=0, reserved=counter.amount)
        used.append(sum(_totals(row, counter)))
    for row in rows.values():
        row.save()
    return used


@transaction.atomic
def settle_in_database(counters: list[Counter], actual: list[int]) -> list[int]:
    rows = _locked_rows(counters)
    settled = []
    for counter, amount in zip(counters, actual, strict=True):
        row = rows[_row_of(counter)]
        _add(row, counter, settled=amount, reserved=-counter.amount)
        settled.append(_totals(row, counter)[0])
    for row in rows.values():
        row.save()
    return settled


@transaction.atomic
def raise_in_database(counters: list[Counter], floors: list[int]) -> None:
    rows = _locked_rows(counters)
    raised = {}
    for counter, floor in zip(counters, floors, strict=True):
        row = rows[_row_of(counter)]
        settled, _ = _totals(row, counter)
        if settled < floor:
            _add(row, counter, settled=floor - settled, reserved=0)
            raised[_row_of(counter)] = row
    for row in raised.values():
        row.save()


def recorded_totals(counters: list[Counter]) -> list[int]:
    """What the usage records say each budget counter has spent in its period (in the counter's unit)."""
    from billing import budgets
    from billing.models import Budget

    found = Budget.objects.in_bulk({c.budget_id for c in counters})
    totals = []
    for counter in counters:
        budget = found.get(counter.budget_id)
        if budget is None:
            totals.append(0)
            continue
        start = datetime.fromtimestamp(counter.window_start, tz=UTC)
        end = datetime.fromtimestamp(counter.window_end, tz=UTC)
        usd, tokens = budgets.recorded_spend(budget, start, end)
        totals.append(usd_to_ticks(usd) if counter.kind == "usd" else tokens)
    return totals


@transaction.atomic
def add_settled_in_database(counters: list[Counter], actual: list[int]) -> None:
    rows = _locked_rows(counters)
    for counter, amount in zip(counters, actual, strict=True):
        _add(rows[_row_of(counter)], counter, settled=amount, reserved=0)
    for row in rows.values():
        row.save()
