"""Circuit breakers, one per deployment, in one BreakerBoard per process; SharedBreakers spreads their
transitions through Redis so a deployment opened in one process is open in all within about a second.

    closed --(consecutive_failures in a row, or error_rate of >= min_calls in window_s)--> open
    open --(cooldown_s over)--> half-open: half_open_probes calls go through
    half-open --(a success)--> closed (counts reset)      half-open --(a failure)--> open (a fresh cooldown)

Beside the breaker, a hold: the provider answered 429 with Retry-After, so calls skip it until then.

The router calls the board on the hot path: all in memory, no I/O, no awaiting. Which outcomes are failures is
the router's business (connect errors, timeouts and 5xx are; 4xx are not; a 429 is a hold). The half-open
state is derived from the clock in each process and never published: every process lets its own probes through.
"""

import asyncio
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from core.values import BreakerPolicy

log = logging.getLogger(__name__)

CLOSED, HALF_OPEN, OPEN = "closed", "half-open", "open"
HELD = "held"  # a Retry-After hold, in drain_changes() and apply_remote()

MAX_HOLD_S = 3600.0
MAX_COOLDOWN_S = 86_400.0  # the longest a policy allows (routing/engine/policy.py): what Redis says, too
# A probe that has not reported in this long is taken as lost (its call was cancelled before it recorded), so a
# half-open breaker does not wait for it forever; at worst a slow probe gets a second one beside it.
LOST_PROBE_S = 60.0
MAX_BUCKETS = 60  # a window is this many buckets at most: 1 s each up to 60 s, wider beyond
MAX_DEPLOYMENTS_FROM_REMOTE = 10_000  # names only Redis has told us of: bounded whatever is published there
MAX_NAME_CHARS = 200


@dataclass(slots=True)
class _Breaker:
    state: str = CLOSED
    consecutive_failures: int = 0
    open_until: float = 0.0  # monotonic: when the cooldown ends
    probes_out: int = 0
    probe_at: float = 0.0  # monotonic: when the last probe was handed out
    held_until: float = 0.0  # monotonic
    # The sliding window: [bucket index, calls, failures], oldest first, with running totals.
    buckets: deque = field(default_factory=deque)
    bucket_s: float = 1.0
    window_calls: int = 0
    window_failures: int = 0

    def clear_counts(self) -> None:
        self.consecutive_failures = 0
        self.buckets.clear()
        self.window_calls = self.window_failures = 0
        self.probes_out = 0


def _bucket_s(policy: BreakerPolicy) -> float:
    return max(1.0, policy.window_s / MAX_BUCKETS)


class BreakerBoard:
    """One per process: every deployment's breaker, keyed by deployment name."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time):
        self.clock = clock  # cooldowns, windows and holds run on it
        self.wall = wall  # only to tell other processes when a cooldown or hold ends
        self._breakers: dict[str, _Breaker] = {}
        # (deployment, "breaker" | "held") -> (state, until_wall): only the latest of each, so a process that
        # never drains (no Redis) keeps one entry per deployment, not one per transition.
        self._changes: dict[tuple[str, str], tuple[str, float | None]] = {}

    # --- reads (side-effect free) ------------------------------------------------------------------------

    def state(self, deployment: str, policy: BreakerPolicy) -> str:
        breaker = self._breakers.get(deployment)
        return CLOSED if breaker is None else self._state_of(breaker, self.clock())

    def is_open(self, deployment: str, policy: BreakerPolicy) -> bool:
        """True when a call must skip it now: open and cooling, half-open with every probe out, or held."""
        breaker = self._breakers.get(deployment)
        if breaker is None:
            return False
        now = self.clock()
        if now < breaker.held_until:
            return True
        state = self._state_of(breaker, now)
        if state == OPEN:
            return True
        return state == HALF_OPEN and not self._has_probe(breaker, policy, now)

    def held_for(self, deployment: str) -> float:
        breaker = self._breakers.get(deployment)
        return 0.0 if breaker is None else max(0.0, breaker.held_until - self.clock())

    def snapshot(self) -> dict[str, str]:
        now = self.clock()
        return {name: self._state_of(breaker, now) for name, breaker in self._breakers.items()}

    # --- the router's calls -------------------------------------------------------------------------------

    def acquire(self, deployment: str, policy: BreakerPolicy) -> bool:
        """Right before an attempt: may it go? Holds are not checked here: the router reads them with is_open
        and held_for, and a call that waited its Retry-After out may go at once."""
        breaker = self._breakers.get(deployment)
        if breaker is None:
            return True
        now = self.clock()
        self._settle(breaker, now)
        if breaker.state == CLOSED:
            return True
        if breaker.state == OPEN or not self._has_probe(breaker, policy, now):
            return False
        if breaker.probes_out >= policy.half_open_probes:  # the ones out are lost: start counting again
            breaker.probes_out = 0
        breaker.probes_out += 1
        breaker.probe_at = now
        return True

    def record(self, deployment: str, policy: BreakerPolicy, *, ok: bool) -> None:
        breaker = self._breakers.get(deployment)
        if breaker is None:
            breaker = self._breakers[deployment] = _Breaker()
        now = self.clock()
        self._settle(breaker, now)
        if breaker.state == OPEN:
            return  # a call that started before it opened: the cooldown stands either way
        if breaker.state == HALF_OPEN:
            if ok:
                breaker.state = CLOSED
                breaker.clear_counts()
                self._changed(deployment, "breaker", CLOSED, None)
            else:
                self._open(deployment, breaker, policy, now)
            return
        self._count(breaker, policy, now, ok=ok)
        if ok:
            breaker.consecutive_failures = 0
            return
        breaker.consecutive_failures += 1
        if breaker.consecutive_failures >= policy.consecutive_failures or (
            breaker.window_calls >= policy.min_calls
            and breaker.window_failures >= policy.error_rate * breaker.window_calls
        ):
            self._open(deployment, breaker, policy, now)

    def hold(self, deployment: str, seconds: float) -> None:
        """The provider answered 429 with Retry-After `seconds`: skip it until then (3600 s at most)."""
        if not seconds > 0:  # also NaN
            return
        seconds = min(float(seconds), MAX_HOLD_S)
        breaker = self._breakers.get(deployment)
        if breaker is None:
            breaker = self._breakers[deployment] = _Breaker()
        now = self.clock()
        if now + seconds > breaker.held_until:
            breaker.held_until = now + seconds
            self._changed(deployment, HELD, HELD, self.wall() + seconds)

    # --- between processes --------------------------------------------------------------------------------

    def apply_remote(self, deployment: str, state: str, *, until_wall: float | None) -> None:
        """Another process opened it (until its cooldown ends, wall-clock epoch), closed it, or held it.
        Applied here without being published again. Ends already past change nothing."""
        breaker = self._breakers.get(deployment)
        if breaker is None:
            if len(self._breakers) >= MAX_DEPLOYMENTS_FROM_REMOTE or len(deployment) > MAX_NAME_CHARS:
                return
            if state == CLOSED:
                return  # nothing to close
        now = self.clock()
        if state == CLOSED:
            if breaker.state != CLOSED:
                breaker.state = CLOSED
                breaker.clear_counts()
            return
        if state not in (OPEN, HELD) or until_wall is None or not math.isfinite(until_wall):
            return
        left_s = until_wall - self.wall()
        if left_s <= 0:
            return
        if breaker is None:
            breaker = self._breakers[deployment] = _Breaker()
        if state == HELD:
            breaker.held_until = max(breaker.held_until, now + min(left_s, MAX_HOLD_S))
            return
        until = now + min(left_s, MAX_COOLDOWN_S)
        if self._state_of(breaker, now) == OPEN:
            until = max(until, breaker.open_until)  # two processes opened it: the later end stands
        breaker.state = OPEN
        breaker.open_until = until
        breaker.clear_counts()

    def drain_changes(self) -> list[tuple[str, str, float | None]]:
        """Transitions made here since the last call, the latest per deployment (and hold), to publish."""
        changes = [(deployment, state, until) for (deployment, _), (state, until) in self._changes.items()]
        self._changes.clear()
        return changes

    # --- inside -------------------------------------------------------------------------------------------

    @staticmethod
    def _state_of(breaker: _Breaker, now: float) -> str:
        if breaker.state == OPEN and now >= breaker.open_until:
            return HALF_OPEN
        return breaker.state

    @staticmethod
    def _has_probe(breaker: _Breaker, policy: BreakerPolicy, now: float) -> bool:
        """In half-open: is a probe left to hand out?"""
        if breaker.state == OPEN:  # cooled but not yet settled: no probe is out
            return True
        return breaker.probes_out < policy.half_open_probes or now - breaker.probe_at >= LOST_PROBE_S

    @staticmethod
    def _settle(breaker: _Breaker, now: float) -> None:
        """Make the clock's half-open the stored one."""
        if breaker.state == OPEN and now >= breaker.open_until:
            breaker.state = HALF_OPEN
            breaker.probes_out = 0

    def _open(self, deployment: str, breaker: _Breaker, policy: BreakerPolicy, now: float) -> None:
        breaker.state = OPEN
        breaker.open_until = now + policy.cooldown_s
        breaker.clear_counts()
        self._changed(deployment, "breaker", OPEN, self.wall() + policy.cooldown_s)

    def _changed(self, deployment: str, kind: str, state: str, until_wall: float | None) -> None:
        self._changes[(deployment, kind)] = (state, until_wall)

    @staticmethod
    def _count(breaker: _Breaker, policy: BreakerPolicy, now: float, *, ok: bool) -> None:
        """Add one call to the sliding window, dropping the buckets that slid out of it."""
        bucket_s = _bucket_s(policy)
        if bucket_s != breaker.bucket_s:  # the policy changed its window: start it afresh
            breaker.buckets.clear()
            breaker.window_calls = breaker.window_failures = 0
            breaker.bucket_s = bucket_s
        index = int(now // bucket_s)
        oldest_kept = index - math.ceil(policy.window_s / bucket_s) + 1
        buckets = breaker.buckets
        while buckets and buckets[0][0] < oldest_kept:
            _, calls, failures = buckets.popleft()
            breaker.window_calls -= calls
            breaker.window_failures -= failures
        if not buckets or buckets[-1][0] != index:
            buckets.append([index, 0, 0])
        bucket = buckets[-1]
        bucket[1] += 1
        breaker.window_calls += 1
        if not ok:
            bucket[2] += 1
            breaker.window_failures += 1


# --- across processes -------------------------------------------------------------------------------------

MAX_FIELDS_READ = 10_000
MAX_ENTRY_BYTES = 1_000
HASH_TTL_S = 2 * 86_400  # longer than the longest cooldown the policy allows (86,400 s): stale hashes go


@dataclass(frozen=True, slots=True)
class _Entry:
    deployment: str
    state: str
    until: float | None
    process: str


def _parse_entry(raw: object) -> _Entry | None:
    """One hash value or channel message; None when malformed in any way."""
    if isinstance(raw, str):
        raw = raw.encode()
    if not isinstance(raw, bytes) or len(raw) > MAX_ENTRY_BYTES:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # "[[[[…" within the byte limit is deep enough to recurse out
        return None
    if not isinstance(data, dict):
        return None
    deployment, state, until, process = (data.get(k) for k in ("deployment", "state", "until", "process"))
    if not isinstance(deployment, str) or not deployment or len(deployment) > MAX_NAME_CHARS:
        return None
    if not isinstance(process, str) or state not in (OPEN, CLOSED, HELD):
        return None
    if state == CLOSED:
        until = None
    elif isinstance(until, bool) or not isinstance(until, int | float) or not math.isfinite(until):
        return None
    return _Entry(deployment, state, None if until is None else float(until), process)


class SharedBreakers:
    """Publishes this process's transitions and applies the others', so a deployment opened in one process is
    open in all within about a second. Never on the request path.

    Redis holds a hash {prefix}:breakers (one field per deployment's breaker and one per hold, each a JSON
    {deployment, state, until, process}) for processes that start later, and the same JSON is published on the
    channel {prefix}:breakers."""

    def __init__(self, board: BreakerBoard, *, redis_client, prefix: str, process_id: str) -> None:
        self.board = board
        self.redis = redis_client
        self.key = f"{prefix}:breakers"  # the hash and the channel
        self.process_id = process_id
        self.is_connected = False  # subscribed and hearing the others
        self.redis_errors = 0  # rounds lost to Redis since start-up
        self._unsent: dict[tuple[str, str], tuple[str, float | None]] = {}

    async def publish_pending(self) -> None:
        """Publish what the board changed since the last call. On a Redis error it raises, and the changes are
        kept for the next call (newer ones replace them)."""
        for deployment, state, until in self.board.drain_changes():
            self._unsent[(deployment, HELD if state == HELD else "breaker")] = (state, until)
        if not self._unsent:
            return
        pending, self._unsent = self._unsent, {}
        now_wall = self.board.wall()
        pipe = self.redis.pipeline(transaction=False)
        for (deployment, kind), (state, until) in pending.items():
            if state != CLOSED and (until is None or until <= now_wall):
                continue  # over already: nobody needs to hear of it
            payload = json.dumps({"deployment": deployment, "state": state, "until": until, "process": self.process_id})
            field = f"{kind}:{deployment}"
            if state == CLOSED:
                pipe.hdel(self.key, field)
            else:
                pipe.hset(self.key, field, payload)
            pipe.publish(self.key, payload)
        pipe.expire(self.key, HASH_TTL_S)
        try:
            await pipe.execute()
        except BaseException:
            for item, value in pending.items():
                self._unsent.setdefault(item, value)
            raise

    async def load(self) -> None:
        """Apply the states still in force that other processes left in the hash (at start-up, and after
        reconnecting: messages sent while we were away were lost). Reads 10,000 fields at most."""
        read = 0
        cursor = 0
        while read < MAX_FIELDS_READ:
            cursor, fields = await self.redis.hscan(self.key, cursor, count=1000)
            for value in list(fields.values())[: MAX_FIELDS_READ - read]:
                read += 1
                entry = _parse_entry(value)
                if entry is not None and entry.state != CLOSED:
                    self._apply(entry)
            if cursor == 0:
                break

    async def run_forever(self, *, interval_s: float = 0.2) -> None:
        """Listen to the others and publish ours every interval_s until cancelled. Redis away: said once, tried
        again after a back-off (from interval_s, doubling to 5 s), the board working in-process meanwhile."""
        backoff_s = interval_s
        failing = False
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.key)
                await self.load()  # after subscribing, so nothing falls between the read and the messages
                self.is_connected = True
                if failing:
                    log.info("circuit breakers: shared through Redis again")
                    failing = False
                backoff_s = interval_s
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=interval_s)
                    if message is not None and message.get("type") == "message":
                        entry = _parse_entry(message.get("data"))
                        if entry is not None:
                            self._apply(entry)
                    await self.publish_pending()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.is_connected = False
                self.redis_errors += 1
                if not failing:
                    failing = True
                    log.warning("circuit breakers: not shared through Redis (%s); each process keeps its own", exc)
                else:
                    log.debug("circuit breakers: Redis still away: %s", exc)
            finally:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation that
                # arrives as the close finishes, and this loop would then never stop (seen in the tests).
                try:
                    async with asyncio.timeout(1):
                        await pubsub.aclose()
                except Exception as exc:  # a connection already gone cannot be closed politely
                    log.debug("circuit breakers: closing the Redis subscription: %s", exc)
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, 5.0)

    def _apply(self, entry: _Entry) -> None:
        if entry.process != self.process_id:  # our own come back to us on the channel
            self.board.apply_remote(entry.deployment, entry.state, until_wall=entry.until)
