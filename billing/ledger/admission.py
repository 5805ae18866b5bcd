"""Admission control for /v1: reserve a request's worst case against every limit that applies to it, refuse
it if any would be crossed, settle to the real usage when it ends.

One Ledger per gateway process (installed by the lifespan). With REDIS_URL every counter lives in Redis; if
Redis stops answering, the database takes over (slower, still shared by every process) until Redis answers
again. Without REDIS_URL (the embedded default, one process) rate windows are in memory and budgets in the
database. If no store answers, requests that have limits are refused: limits fail closed.

A store that takes over starts from what was counted before it. Budget counters are raised to the usage
records' spend of their scope the first time this process uses them and after every switch (so a budget
created mid-month starts from what was already spent). Rate windows are too young for their records: each
process carries its own share of every live minute into the store it switches to (tally.py), including a Redis
that restarted empty between two calls (its epoch changed: stores.EPOCH_KEY).
"""

import asyncio
import logging
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection

from billing import token_estimate
from billing.ledger import alerts
from billing.ledger.counters import Counter, Refusal, usd_to_ticks
from billing.ledger.plan import (
    NOTHING_NEEDED,
    counters_for,
    has_limits,
    needs_worst_case,
    snapshot_has_limits,
    worst_case,
)
from billing.ledger.stores import DatabaseStore, MemoryStore, NewEpoch, RedisStore, recorded_totals
from billing.ledger.tally import WindowTally
from billing.usage import UsageEvent
from config.db_thread import run_in_db
from core.errors import BudgetExceeded, LimitsUnavailable, RateLimited
from core.values import Principal, Target
from routing.control_plane import snapshot

log = logging.getLogger(__name__)
REDIS_RETRY_AFTER_S = 5.0  # after a Redis failure, the database serves this long before Redis is tried again
# While this process has live rate windows, it hands its share to whichever store serves this often even if no
# call comes: a process idle during an outage must not leave the store taking over short of its count.
TALLY_SYNC_S = 1.0


@dataclass(slots=True)
class Reservation:
    # (store, its counters, the tally epoch they were reserved in: "" for the in-process store)
    parts: list[tuple[object, list[Counter], str]] = field(default_factory=list)
    used: dict[str, int] = field(default_factory=dict)  # counter key -> spent + reserved, this one included

    def add(self, store, counters: list[Counter], used: list[int], epoch: str = "") -> "Reservation":
        self.parts.append((store, counters, epoch))
        self.used.update(zip((c.key for c in counters), used, strict=True))
        return self


DATABASE = "database"  # the database store's tally epoch; Redis's are "redis:<its epoch>"


class Ledger:
    def __init__(self, *, redis_url: str = "") -> None:
        self.redis = RedisStore(redis_url, lease_s=settings.TOLLWAY_LEDGER_LEASE_S) if redis_url else None
        self.memory = MemoryStore()
        self.database = DatabaseStore()
        self._redis_down_until = 0.0
        self._redis_error: Exception | None = None
        self._settling: set[asyncio.Task] = set()
        # Where limits are enforced now ("redis", "database", "none": refused); a change is logged once.
        self._serving = "redis" if self.redis is not None else "database"
        # Rate windows: this process's share of each live minute, carried into the store that takes over.
        self.tally = WindowTally()
        # Budgets: the first time this process uses a budget counter, and again after each switch, it is raised
        # to what the usage records say (a budget created mid-month, a store that has not seen the other's spend).
        self._caught_up: set[str] = set()
        self._caught_up_in = ""  # the store epoch those counters were caught up in
        self._catching_up = asyncio.Lock()
        self._records_unreadable_until = 0.0
        self._syncing: asyncio.Task | None = None

    @property
    def mode(self) -> str:
        if self._serving == "none":
            return "unavailable"
        if self.redis is None:
            return "embedded"
        return "redis" if self._serving == "redis" else "database-fallback"

    def _now_serving(self, serving: str) -> None:
        """Log a switch of the store that enforces limits once, when it has happened (a call went through it)."""
        if serving == self._serving:
            return
        was, self._serving = self._serving, serving
        if serving == "redis":
            log.warning("Redis answers again: limits and budgets enforced in Redis")
        elif serving == "database" and was == "redis":
            log.warning("Redis unreachable (%s): limits and budgets enforced through the database", self._redis_error)
        elif serving == "database" and self.redis is not None:
            log.warning("the database answers again: limits and budgets enforced through it (Redis unreachable)")
        elif serving == "database":
            log.warning("the database answers again: budgets enforced through it")

    def _redis_failed(self, exc: Exception) -> None:
        # Logged when the database has taken over (or has not: _no_store); each retry after that is not news.
        log.debug("Redis unreachable (%s): trying again in %g s", exc, REDIS_RETRY_AFTER_S)
        self._redis_error = exc
        self._redis_down_until = time.monotonic() + REDIS_RETRY_AFTER_S

    def _no_store(self, exc: Exception) -> LimitsUnavailable:
        if self._serving != "none":
            self._serving = "none"
            log.error("no store for limits and budgets answers (%s): refusing requests that have limits", exc)
        return LimitsUnavailable(
            "Usage limits cannot be checked right now (their stores are unreachable); try again shortly."
        )

    async def _catch_up_budgets(self, store, epoch: str, counters: list[Counter]) -> None:
        """Raise each budget counter this process has not used yet in this store epoch to the recorded spend of
        its scope in its period. Raising is idempotent and never lowers, so every process may do it."""
        if epoch != self._caught_up_in:
            self._caught_up_in, self._caught_up = epoch, set()
        if not any(c.budget_id is not None and c.key not in self._caught_up for c in counters):
            return
        if time.monotonic() < self._records_unreadable_until:
            return  # the database is away: enforce with what the store has; catch up when it answers
        async with self._catching_up:
            if epoch != self._caught_up_in:
                return  # the store switched while this call waited: the next call catches up there
            stale = [c for c in counters if c.budget_id is not None and c.key not in self._caught_up]
            if not stale:
                return
            try:
                floors = await run_in_db(recorded_totals, stale)
            except Exception as exc:
                if not self._records_unreadable_until:
                    log.warning("usage records unreadable (%s): budgets enforced without catching up", exc)
                self._records_unreadable_until = time.monotonic() + REDIS_RETRY_AFTER_S
                return
            self._records_unreadable_until = 0.0
            await store.raise_settled(stale, floors)
            self._caught_up.update(c.key for c in stale)

    async def reserve(self, counters: list[Counter], now: float) -> Reservation | Refusal:
        if self.redis is not None and (self._syncing is None or self._syncing.done()):
            self._syncing = asyncio.get_running_loop().create_task(self._sync_tally_forever())
        if self.redis is not None and time.monotonic() >= self._redis_down_until:
            try:
                outcome = await self._reserve_in_redis(counters, now)
            except Exception as exc:  # redis.RedisError, OSError, timeouts: fall back, never to memory
                self._redis_failed(exc)
            else:
                self._now_serving("redis")
                return outcome
        if self.redis is not None:
            outcome = await self._reserve_in(self.database, counters, now, epoch=DATABASE)
            self._now_serving("database")
            return outcome
        rates = [c for c in counters if c.is_rate]
        budgets = [c for c in counters if not c.is_rate]
        reservation = Reservation()
        if rates:
            outcome = await self.memory.reserve(rates, now)
            if isinstance(outcome, Refusal):
                return outcome
            reservation.add(self.memory, rates, outcome)
        if budgets:
            outcome = await self._reserve_in(self.database, budgets, now)
            if isinstance(outcome, Refusal):
                await self.memory.settle(rates, [0] * len(rates))  # refused: it was never admitted
                return outcome
            reservation.parts += outcome.parts
            reservation.used.update(outcome.used)
            self._now_serving("database")
        return reservation

    async def _reserve_in_redis(self, counters: list[Counter], now: float) -> Reservation | Refusal:
        redis = self.redis
        if not redis.epoch:
            await redis.learn_epoch()
        for _ in range(3):
            epoch = redis.epoch
            await self._catch_up_budgets(redis, f"redis:{epoch}", counters)
            owed = self.tally.owed(f"redis:{epoch}", now)
            try:
                outcome = await redis.reserve_in_epoch(counters, owed, epoch)
            except BaseException:
                self.tally.returned(f"redis:{epoch}", owed)
                raise
            if not isinstance(outcome, NewEpoch):
                return self._reserved(redis, counters, outcome, f"redis:{epoch}")
            self.tally.returned(f"redis:{epoch}", owed)
            redis.epoch = outcome.epoch
            log.warning("Redis restarted empty: this process carries its rate counts into it, budgets catch up")
        raise RuntimeError("Redis's ledger epoch keeps changing")

    def _reserved(self, store, counters: list[Counter], outcome, epoch: str) -> Reservation | Refusal:
        if isinstance(outcome, Refusal):
            return outcome
        self.tally.counted(epoch, counters, [c.amount for c in counters])
        return Reservation().add(store, counters, outcome, epoch)

    async def _reserve_in(self, store, counters, now: float, *, epoch: str = "") -> Reservation | Refusal:
        owed = self.tally.owed(epoch, now) if epoch else []
        if not counters and not owed:
            return Reservation()  # a tally sync with nothing to hand over
        try:
            await self._catch_up_budgets(store, DATABASE, counters)
            outcome = await store.reserve(counters, now, owed)
        except Exception as exc:
            if owed:
                self.tally.returned(epoch, owed)
            raise self._no_store(exc) from None
        if not epoch:
            return outcome if isinstance(outcome, Refusal) else Reservation().add(store, counters, outcome)
        return self._reserved(store, counters, outcome, epoch)

    def settle_soon(self, reservation: Reservation, usage: UsageEvent) -> None:
        """Settle in the background: the response is not held up, and shutdown waits for it (drain)."""
        task = asyncio.get_running_loop().create_task(self.settle(reservation, usage))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def settle(self, reservation: Reservation, usage: UsageEvent) -> None:
        amounts = {
            "requests": 1,
            "tokens": usage.prompt_tokens + usage.completion_tokens,
            "usd": usd_to_ticks(usage.cost_usd),
        }
        for store, counters, epoch in reservation.parts:
            actual = [amounts[c.kind] for c in counters]
            changes = [a - c.amount for c, a in zip(counters, actual, strict=True)]
            try:
                if store is self.redis:
                    totals = await self.redis.settle_in_epoch(counters, actual, epoch.removeprefix("redis:"))
                else:
                    totals = await store.settle(counters, actual)
            except Exception as exc:
                if epoch:
                    self.tally.counted(None, counters, changes)
                if store is not self.redis:
                    log.exception("settling %s failed; reconciliation will correct the counters", usage.request_id)
                    continue
                # Redis went away with this reservation. Its rate counts are in the tally, carried into the
                # database when it takes over; its spend is counted there now.
                self._redis_failed(exc)
                spent = [(c, a) for c, a in zip(counters, actual, strict=True) if not c.is_rate]
                try:
                    if spent:
                        await self.database.add_settled([c for c, _ in spent], [a for _, a in spent])
                except Exception:
                    log.exception("settling %s failed; reconciliation will correct the counters", usage.request_id)
                continue
            if isinstance(totals, NewEpoch):
                # Lost with a Redis that restarted empty: the tally carries the difference to what was carried.
                self.tally.counted(None, counters, changes)
                continue
            if epoch:
                self.tally.counted(epoch, counters, changes)
            alerts.check_thresholds(counters, totals)

    async def _sync_tally_forever(self) -> None:
        while True:
            await asyncio.sleep(TALLY_SYNC_S)
            if not self.tally.is_counting:
                continue
            try:
                # Reserving nothing carries what the serving store is owed (and notices a restarted Redis).
                await self.reserve([], time.time())
            except LimitsUnavailable:
                pass  # no store answers (logged once); carried when one does
            except Exception:
                log.exception("handing this process's rate counts to the serving store failed")

    async def probe(self, *, timeout_s: float) -> str:
        """Where limits can be enforced right now: "redis", "database" or "" (nowhere). For /readyz: asks
        Redis, then the database, each for at most `timeout_s`."""
        if self.redis is not None:
            try:
                async with asyncio.timeout(timeout_s):
                    await self.redis.client.ping()
                return "redis"
            except Exception as exc:
                log.debug("readiness: Redis does not answer (%s)", exc)
        try:
            async with asyncio.timeout(timeout_s):
                await run_in_db(_select_one)
            return "database"
        except Exception as exc:
            log.debug("readiness: the database does not answer (%s)", exc)
            return ""

    async def drain(self) -> None:
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)

    async def aclose(self) -> None:
        syncing, self._syncing = self._syncing, None
        if syncing is not None:
            syncing.cancel()
            await asyncio.gather(syncing, return_exceptions=True)
        await self.drain()
        if self.redis is not None:
            await self.redis.aclose()


def _select_one() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


_ledger: Ledger | None = None


def install(ledger: Ledger | None) -> None:
    global _ledger
    _ledger = ledger


def current() -> Ledger:
    global _ledger
    if _ledger is None:
        _ledger = Ledger()
    return _ledger


def _format_reset(seconds: float) -> str:
    # OpenAI's style: "1s", "6m0s", "59.5s".
    seconds = max(0.0, seconds)
    if seconds >= 60:
        return f"{int(seconds // 60)}m{int(seconds % 60)}s"
    return f"{seconds:.3g}s"


def rate_headers(counters: list[Counter], used: dict[str, int], now: float) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers from the tightest requests and tokens windows."""
    headers: dict[str, str] = {}
    for kind, suffix in (("requests", "requests"), ("tokens", "tokens")):
        windows = [c for c in counters if c.is_rate and c.kind == kind and c.limit is not None]
        if not windows:
            continue
        tightest = min(windows, key=lambda c: c.limit - used.get(c.key, 0))
        headers[f"x-ratelimit-limit-{suffix}"] = str(tightest.limit)
        headers[f"x-ratelimit-remaining-{suffix}"] = str(max(0, tightest.limit - used.get(tightest.key, 0)))
        headers[f"x-ratelimit-reset-{suffix}"] = _format_reset(tightest.window_end - now)
    return headers


def _refused(refusal: Refusal, now: float, counters: list[Counter], used: dict[str, int]) -> Exception:
    counter = refusal.counter
    if counter.is_rate:
        what = "Requests" if counter.kind == "requests" else "Tokens"
        error = RateLimited(
            f"{what}-per-minute limit of {counter.limit} reached for this {counter.label}.",
            retry_after_s=int(counter.window_end - now) + 1,
            code=f"{counter.kind}_per_minute_exceeded",
        )
        used = {**used, counter.key: refusal.used}
        error.headers.update(rate_headers(counters, used, now))
        return error
    unit = "spend" if counter.kind == "usd" else "token"
    return BudgetExceeded(f"The {counter.label}'s {unit} limit for this period is reached.")


async def admit(
    principal: Principal, alias: str, targets: tuple[Target, ...], body: dict, usage: UsageEvent
) -> tuple[str, tuple[Target, ...]]:
    """Reserve or refuse. Returns the alias and targets to route to: a downgrade budget may swap them."""
    current_snapshot = snapshot.current()
    # The call's own start, as on its usage record: a minute's admitted calls are its records of that minute.
    now = usage.created_at
    subscription_id = usage.subscription_id  # the subscription granting the alias asked for (pipeline._route)
    if not has_limits(current_snapshot, principal, subscription_id):
        return alias, targets
    unenforced: frozenset[int] = frozenset()
    counts_need = needs_worst_case(current_snapshot, principal, subscription_id)
    if counts_need:
        await token_estimate.ready()
    while True:
        need = worst_case(body, targets, endpoint=usage.endpoint) if counts_need else NOTHING_NEEDED
        counters = counters_for(
            current_snapshot,
            principal,
            subscription_id=subscription_id,
            need=need,
            now=now,
            unenforced_budgets=unenforced,
        )
        if not counters:
            return alias, targets
        outcome = await current().reserve(counters, now)
        if isinstance(outcome, Reservation):
            usage.reservation = outcome
            usage.limit_headers = rate_headers(counters, outcome.used, now)
            return alias, targets
        budget_id = outcome.counter.budget_id
        rule = current_snapshot.budget_by_id.get(budget_id)
        downgrade = rule.downgrade_alias if rule is not None and rule.action == "downgrade" else ""
        if budget_id is None or not downgrade or downgrade == alias or downgrade not in current_snapshot.aliases:
            raise _refused(outcome, now, counters, {})
        # Over a downgrade budget: route to the cheaper alias; that budget keeps counting but no longer refuses.
        log.info("request %s downgraded from %s to %s by budget %s", usage.request_id, alias, downgrade, budget_id)
        alias, targets = downgrade, current_snapshot.aliases[downgrade]
        unenforced |= {budget_id}
        usage.downgraded_from = usage.downgraded_from or usage.alias


def settle(usage: UsageEvent) -> None:
    if usage.reservation is not None:
        reservation, usage.reservation = usage.reservation, None
        current().settle_soon(reservation, usage)


async def readiness():
    """/readyz's "limits" check. Ready while some store can enforce limits (Redis, or the database in its place,
    exact but slower), and while no store can if nothing in the snapshot has a limit: calls without limits
    are still served. Not ready when keys need limits that no store can enforce: their calls would be refused
    (503 limits_unavailable), so traffic is better sent to a gateway that can count them."""
    from routing.observability.readiness import CheckResult

    ledger = current()
    where = await ledger.probe(timeout_s=settings.TOLLWAY_READY_TIMEOUT_S / 2)
    if where == "redis":
        return CheckResult(True, {"mode": "redis", "enforced_in": "redis"})
    if where == "database" and ledger.redis is not None:
        return CheckResult(
            True, {"mode": "database-fallback", "enforced_in": "database (Redis unreachable: fallback, slower)"}
        )
    current_snapshot = snapshot.current()
    if where == "database" or (ledger.redis is None and not current_snapshot.budgets):
        detail = {"mode": "embedded", "enforced_in": "rate windows in process, budgets in the database"}
        return CheckResult(True, detail)
    return CheckResult(
        not snapshot_has_limits(current_snapshot),
        {
            "mode": "unavailable",
            "enforced_in": "nowhere: Redis and the database do not answer; calls with limits are refused",
        },
    )
