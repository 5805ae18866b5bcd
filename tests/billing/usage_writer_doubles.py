"""Test doubles for the usage writer: events without a database, a store that fails on demand, a sleep that
only records how long it was asked to wait, and a crash (the process dying without closing anything)."""

import asyncio
import time
from decimal import Decimal

from billing.outbox import Outbox
from billing.services import store_usage_rows
from billing.usage import UsageEvent
from billing.usage_writer import UsageWriter
from core.values import ModelPrice, Principal, Target

PRINCIPAL = Principal(
    key_id=10**9,  # no such key, team or tenant: stored rows keep the names and lose the links
    key_prefix="sk-tw-test",
    secret_hash="",
    tenant_id=10**9,
    tenant_name="Acme",
    team_id=10**9,
    team_name="Checkout",
    allowed_aliases=None,
    expires_at=None,
    is_revoked=False,
    rpm_limit=None,
    tpm_limit=None,
)
TARGET = Target(
    deployment="main",
    provider="openai-test",
    kind="openai",
    base_url="http://127.0.0.1:9",
    model="gpt-4o-mini",
    price=ModelPrice(input_per_million=Decimal("1000"), output_per_million=Decimal("2000")),
)


def usage_event(request_id: str, *, status: int = 200, stream: bool = False) -> UsageEvent:
    event = UsageEvent(
        request_id=request_id,
        created_at=time.time(),
        started=time.perf_counter(),
        principal=PRINCIPAL,
        endpoint="chat.completions",
        alias="gpt-4o-mini",
        stream=stream,
    )
    event.prompt_tokens, event.completion_tokens = 9, 12
    event.close(status=status)
    return event


class DatabaseDown(Exception):
    pass


class MemoryStore:
    """A database double: one record per request id (replays ignored); `failures` calls fail first."""

    def __init__(self, *, failures: int = 0) -> None:
        self.failures = failures
        self.records: dict[str, dict] = {}
        self.calls = 0

    async def __call__(self, rows: list[dict]) -> None:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise DatabaseDown("connection refused")
        for row in rows:
            self.records.setdefault(row["request_id"], row)


class DatabaseStore:
    """The real store_usage_rows, off the event loop (as in production); can fail, or let the process 'die'
    right after a commit (`die_after` successful calls), before the writer learns it succeeded."""

    def __init__(self, *, failures: int = 0, die_after: int | None = None) -> None:
        self.failures, self.die_after = failures, die_after
        self.is_dead = False

    async def __call__(self, rows: list[dict]) -> None:
        if self.is_dead:
            await asyncio.Event().wait()  # a dead process does nothing more
        if self.failures:
            self.failures -= 1
            raise DatabaseDown("connection refused")
        await asyncio.to_thread(store_usage_rows, rows=rows)
        if self.die_after is not None:
            self.die_after -= 1
            if self.die_after == 0:
                self.is_dead = True
                await asyncio.Event().wait()


class RecordedSleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


def new_writer(directory, store, **options) -> UsageWriter:
    memory_rows = options.pop("memory_rows", 10_000)
    options.setdefault("flush_interval_s", 0.01)
    options.setdefault("batch_size", 500)
    return UsageWriter(outbox=Outbox(directory, memory_rows=memory_rows), store=store, **options)


async def crash(writer: UsageWriter) -> None:
    """SIGKILL, as far as the outbox can tell: the task stops mid-way, files stay, their locks go."""
    if writer._task is not None:
        writer._task.cancel()
        await asyncio.gather(writer._task, return_exceptions=True)
    writer.outbox.release()


async def eventually(predicate, *, tries: int = 2000) -> bool:
    """Poll the event loop a bounded number of times (the writer's own timers are milliseconds here)."""
    for _ in range(tries):
        if predicate():
            return True
        await asyncio.sleep(0.005)
    return predicate()
