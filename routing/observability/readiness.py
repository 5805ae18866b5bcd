"""/readyz: may this worker take traffic? Each check is an async function returning a CheckResult; all run at
once, each under TOLLWAY_READY_TIMEOUT_S, none on the event loop's critical path (database work goes to the
database thread, Redis and the broker are asked over async sockets).

Readiness means "send me traffic", so only what stops the gateway serving makes it not ready. A load balancer
that pulled every gateway while Redis or PostgreSQL is away would turn an outage the gateway survives into a
total one. So:

- required checks fail readiness (503): the snapshot (catalogue, limits, budgets) is not loaded yet; limits that
  keys need cannot be enforced by any store (the ledger's "limits" check).
- the others only degrade it (200, "status": "degraded", named in "degraded"): the database (calls are served
  from memory, usage rows wait in the outbox), Redis (the ledger enforces limits through the database),
  the Celery broker (no call needs it).

Checks are registered by name, so other parts add their own at import or startup:

    readiness.register_check("budgets", check_budget_store)                    # required
    readiness.register_check("search", check_search, is_required=False)        # degrades only
"""

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection

from billing import usage_writer
from config.db_thread import run_in_db
from routing.control_plane import snapshot


@dataclass(frozen=True, slots=True)
class CheckResult:
    is_ok: bool
    detail: Any = ""

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.is_ok, "detail": self.detail}


Check = Callable[[], Awaitable[CheckResult]]
_checks: dict[str, tuple[Check, bool]] = {}  # name -> (check, is it required to serve)

READY, DEGRADED, NOT_READY = "ready", "degraded", "not ready"


@dataclass(frozen=True, slots=True)
class Readiness:
    status: str  # READY, DEGRADED or NOT_READY
    checks: dict[str, dict[str, Any]]
    degraded: list[str]  # failed checks the gateway serves without
    failed: list[str]  # failed required checks

    @property
    def can_serve(self) -> bool:
        return self.status != NOT_READY

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "degraded": self.degraded, "checks": self.checks}


def register_check(name: str, check: Check, *, is_required: bool = True) -> None:
    """Add (or replace) a readiness check; a check that raises or overruns counts as failed. A failed required
    check makes the gateway not ready (503); any other only degraded."""
    _checks[name] = (check, is_required)


def unregister_check(name: str) -> None:
    _checks.pop(name, None)


async def _run_one(check: Check, timeout_s: float) -> CheckResult:
    try:
        return await asyncio.wait_for(check(), timeout=timeout_s)
    except TimeoutError:
        return CheckResult(False, f"no answer within {timeout_s:g} s")
    except Exception as exc:
        # Exception text, never the URL we were given: it may carry a password.
        return CheckResult(False, f"{type(exc).__name__}: {exc}"[:200])


async def run_checks(*, timeout_s: float | None = None) -> Readiness:
    timeout_s = settings.TOLLWAY_READY_TIMEOUT_S if timeout_s is None else timeout_s
    registered = dict(_checks)
    results = await asyncio.gather(*(_run_one(check, timeout_s) for check, _ in registered.values()))
    outcomes = dict(zip(registered, results, strict=True))
    failed = [name for name, result in outcomes.items() if not result.is_ok and registered[name][1]]
    degraded = [name for name, result in outcomes.items() if not result.is_ok and not registered[name][1]]
    status = NOT_READY if failed else DEGRADED if degraded else READY
    return Readiness(status, {name: r.to_json() for name, r in outcomes.items()}, degraded, failed)


# --- the built-in checks ------------------------------------------------------------------------------------


def _select_one() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


async def check_database() -> CheckResult:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(run_in_db(_select_one), timeout=settings.TOLLWAY_READY_TIMEOUT_S * 0.9)
    except Exception as exc:
        # What serving without it means: keys in use and the snapshot from memory, usage rows in the outbox.
        error = "no answer in time" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"[:200]
        return CheckResult(
            False,
            {
                "error": error,
                "serving_from": "snapshot",
                "snapshot_age_s": round(time.time() - snapshot.current().loaded_at, 1),
                "usage_rows_waiting": usage_writer.queue_depth(),
            },
        )
    return CheckResult(True, f"{(time.perf_counter() - started) * 1000:.1f} ms")


async def check_usage_records() -> CheckResult:
    """Are usage rows reaching the database? Degrades only: while they cannot, they wait in the outbox on disk
    (billing/usage_writer.py), so serving on loses no record."""
    health = usage_writer.health()
    if health is None:
        return CheckResult(True, "no usage writer in this process")
    detail = dataclasses.asdict(health)
    # Rows the disk refused live only in memory: still served, but a crash now would lose them.
    return CheckResult(not health.is_failing and health.memory_only_rows == 0, detail)


async def _ping_redis(url: str) -> CheckResult:
    import redis.asyncio as redis

    timeout_s = settings.TOLLWAY_READY_TIMEOUT_S
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        await client.ping()
    finally:
        await client.aclose()
    return CheckResult(True, "PONG")


async def check_redis() -> CheckResult:
    return await _ping_redis(settings.REDIS_URL)


async def check_broker() -> CheckResult:
    url = settings.CELERY_BROKER_URL
    parts = urlsplit(url)
    if parts.scheme in {"redis", "rediss"}:
        return await _ping_redis(url)
    # Other brokers (AMQP): reachability is enough to know tasks can be queued.
    default_port = {"amqp": 5672, "amqps": 5671}.get(parts.scheme, 0)
    _reader, writer = await asyncio.open_connection(parts.hostname, parts.port or default_port)
    writer.close()
    await writer.wait_closed()
    return CheckResult(True, f"{parts.scheme} port open")


async def check_snapshot() -> CheckResult:
    loaded_at = snapshot.current().loaded_at
    if not loaded_at:
        return CheckResult(False, "catalogue, limits and budgets not loaded yet")
    return CheckResult(True, {"age_s": round(time.time() - loaded_at, 1)})


def register_builtin_checks() -> None:
    """The checks the configuration calls for; safe to call again after the settings change."""
    register_check("database", check_database, is_required=False)
    register_check("usage_records", check_usage_records, is_required=False)
    register_check("snapshot", check_snapshot)
    optional = {
        "redis": (check_redis, bool(settings.REDIS_URL)),
        # A broker that is just REDIS_URL is checked already; memory:// means tasks run inline.
        "broker": (
            check_broker,
            not settings.CELERY_BROKER_URL.startswith("memory://") and settings.CELERY_BROKER_URL != settings.REDIS_URL,
        ),
    }
    for name, (check, is_wanted) in optional.items():
        if is_wanted:
            register_check(name, check, is_required=False)
        else:
            unregister_check(name)
