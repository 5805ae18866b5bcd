"""Admission control for /v1: reserve a request's worst case against every limit that applies to it, refuse
it if any would be crossed, settle to the real usage when it ends.

One Ledger per gateway process (installed by the lifespan). With REDIS_URL every counter lives in Redis; if
Redis stops answering, the database takes over (slower, still shared by every process) until Redis answers
again. Without REDIS_URL (the embedded default, one process) rate windows are in memory and budgets in the
database. If no store answers, requests that have limits are refused: limits fail closed.
"""

import asyncio
import logging
import time
from dataclasses import dataclass, field

from django.conf import settings

from billing.ledger import alerts
from billing.ledger.counters import Counter, Refusal, usd_to_ticks
from billing.ledger.plan import NOTHING_NEEDED, counters_for, has_limits, needs_worst_case, worst_case
from billing.ledger.stores import DatabaseStore, MemoryStore, RedisStore, recorded_totals
from billing.usage import UsageEvent
from config.db_thread import run_in_db
from routing.engine import snapshot
from routing.engine.snapshot import Principal
from routing.engine.types import Target
from routing.proxy.errors import BudgetExceeded, LimitsUnavailable, RateLimited

log = logging.getLogger(__name__)
REDIS_RETRY_AFTER_S = 5.0  # after a Redis failure, the database serves this long before Redis is tried again


@dataclass(slots=True)
class Reservation:
    parts: list[tuple[object, list[Counter]]] = field(default_factory=list)  # (store, its counters)
    used: dict[str, int] = field(default_factory=dict)  # counter key -> spent + reserved, this one included

    def add(self, store, counters: list[Counter], used: list[int]) -> "Reservation":
        self.parts.append((store, counters))
        self.used.update(zip((c.key for c in counters), used, strict=True))
        return self


class Ledger:
    def __init__(self, *, redis_url: str = "") -> None:
        self.redis = RedisStore(redis_url, lease_s=settings.TOLLWAY_LEDGER_LEASE_S) if redis_url else None
        self.memory = MemoryStore()
        self.database = DatabaseStore()
        self._redis_down_until = 0.0
        self._settling: set[asyncio.Task] = set()
        # After a switch between Redis and the database, the store taking over has not seen what the other
        # settled: each budget counter is first raised to what the usage records say (once per switch).
        self._serving = "redis" if self.redis is not None else "database"
        self._switched = False
        self._caught_up: set[str] = set()

    @property
    def mode(self) -> str:
        if self.redis is None:
            return "embedded"
        return "redis" if time.monotonic() >= self._redis_down_until else "database-fallback"

    def _redis_failed(self, exc: Exception) -> None:
        if self.mode == "redis":
            log.warning("Redis unreachable (%s): limits and budgets enforced through the database", exc)
        self._redis_down_until = time.monotonic() + REDIS_RETRY_AFTER_S

    async def _take_over(self, store, serving: str, counters: list[Counter]) -> None:
        if serving != self._serving:
            log.warning("limits and budgets now enforced in %s", serving)
            self._serving, self._switched = serving, True
            self._caught_up.clear()
        if not self._switched:
            return
        stale = [c for c in counters if c.budget_id is not None and c.key not in self._caught_up]
        if not stale:
            return
        floors = await run_in_db(recorded_totals, stale)
        await store.raise_settled(stale, floors)
        self._caught_up.update(c.key for c in stale)

    async def reserve(self, counters: list[Counter], now: float) -> Reservation | Refusal:
        if self.redis is not None and self.mode == "redis":
            try:
                await self._take_over(self.redis, "redis", counters)
                outcome = await self.redis.reserve(counters, now)
                return outcome if isinstance(outcome, Refusal) else Reservation().add(self.redis, counters, outcome)
            except Exception as exc:  # redis.RedisError, OSError, timeouts: fall back, never to memory
                self._redis_failed(exc)
        if self.redis is not None:
            return await self._reserve_in(self.database, counters, now, take_over=True)
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
        return reservation

    async def _reserve_in(self, store, counters, now: float, *, take_over: bool = False) -> Reservation | Refusal:
        try:
            if take_over:
                await self._take_over(store, "database", counters)
            outcome = await store.reserve(counters, now)
        except Exception as exc:
            log.error("no store for limits and budgets answers (%s): refusing requests that have limits", exc)
            raise LimitsUnavailable(
                "Usage limits cannot be checked right now (their stores are unreachable); try again shortly."
            ) from None
        return outcome if isinstance(outcome, Refusal) else Reservation().add(store, counters, outcome)

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
        for store, counters in reservation.parts:
            actual = [amounts[c.kind] for c in counters]
            try:
                totals = await store.settle(counters, actual)
            except Exception as exc:
                if store is not self.redis:
                    log.exception("settling %s failed; reconciliation will correct the counters", usage.request_id)
                    continue
                # Redis went away with this reservation: the database, which serves now, counts the spend.
                self._redis_failed(exc)
                try:
                    await self.database.add_settled(counters, actual)
                except Exception:
                    log.exception("settling %s failed; reconciliation will correct the counters", usage.request_id)
                continue
            alerts.check_thresholds(counters, totals)

    async def drain(self) -> None:
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)

    async def aclose(self) -> None:
        await self.drain()
        if self.redis is not None:
            await self.redis.aclose()


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
    now = time.time()
    subscription_id = usage.subscription_id  # the subscription granting the alias asked for (pipeline._route)
    if not has_limits(current_snapshot, principal, subscription_id):
        return alias, targets
    unenforced: frozenset[int] = frozenset()
    counts_need = needs_worst_case(current_snapshot, principal, subscription_id)
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
    """/readyz: where limits and budgets are enforced right now. The database fallback still serves (exact,
    slower); it is reported, and the Redis check beside it fails."""
    from routing.observability.readiness import CheckResult

    mode = current().mode
    detail = {
        "redis": "redis",
        "database-fallback": "database (Redis unreachable: fallback, slower)",
        "embedded": "rate windows in process, budgets in the database",
    }[mode]
    return CheckResult(True, {"mode": mode, "enforced_in": detail})
