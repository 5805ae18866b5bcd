"""/readyz: may this worker take traffic? Each check is an async function returning a CheckResult; all run at
once, each under TOLLWAY_READY_TIMEOUT_S, none on the event loop's critical path (database work goes to the
database thread, Redis and the broker are asked over async sockets).

Checks are registered by name, so other parts add their own at import or startup:

    readiness.register_check("budgets", check_budget_store)   # async () -> CheckResult
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection

from config.db_thread import run_in_db
from routing.engine import snapshot


@dataclass(frozen=True, slots=True)
class CheckResult:
    is_ok: bool
    detail: Any = ""

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.is_ok, "detail": self.detail}


Check = Callable[[], Awaitable[CheckResult]]
_checks: dict[str, Check] = {}


def register_check(name: str, check: Check) -> None:
    """Add (or replace) a readiness check; a check that raises or overruns counts as failed."""
    _checks[name] = check


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


async def run_checks(*, timeout_s: float | None = None) -> tuple[bool, dict[str, dict[str, Any]]]:
    timeout_s = settings.TOLLWAY_READY_TIMEOUT_S if timeout_s is None else timeout_s
    names = list(_checks)
    results = await asyncio.gather(*(_run_one(_checks[name], timeout_s) for name in names))
    return all(r.is_ok for r in results), {name: r.to_json() for name, r in zip(names, results, strict=True)}


# --- the built-in checks ------------------------------------------------------------------------------------


def _select_one() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


async def check_database() -> CheckResult:
    started = time.perf_counter()
    await run_in_db(_select_one)
    return CheckResult(True, f"{(time.perf_counter() - started) * 1000:.1f} ms")


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
        return CheckResult(False, "keys and catalogue not loaded yet")
    return CheckResult(True, {"age_s": round(time.time() - loaded_at, 1)})


def register_builtin_checks() -> None:
    """The checks the configuration calls for; safe to call again after the settings change."""
    register_check("database", check_database)
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
            register_check(name, check)
        else:
            unregister_check(name)
