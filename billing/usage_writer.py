"""Usage rows leave the request path here: appended to the outbox, then stored in batches in the background.

`submit()` is the only call on the request path (a dict build and one file append). A background task stores
pending rows every TOLLWAY_USAGE_FLUSH_INTERVAL_S, or sooner when a batch fills. `close()` on shutdown stores
everything still pending, so a graceful stop (SIGTERM) loses nothing; a hard kill leaves the rows in the
outbox for the next process (billing/outbox.py).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable

from billing.outbox import Outbox, Segment
from billing.usage import UsageEvent

log = logging.getLogger(__name__)

StoreRows = Callable[[list[dict]], Awaitable[object]]


class UsageWriter:
    def __init__(self, *, outbox: Outbox, store: StoreRows, flush_interval_s: float, batch_size: int) -> None:
        self.outbox = outbox
        self.store = store
        self.flush_interval_s = flush_interval_s
        self.batch_size = batch_size
        self.pending: list[dict] = []
        self._unretired: list[Segment] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._flush_lock = asyncio.Lock()

    def start(self) -> None:
        self.outbox.open()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="usage-writer")

    def submit(self, event: UsageEvent) -> None:
        row = event.to_row()
        self.outbox.append(row)
        self.pending.append(row)
        if len(self.pending) >= self.batch_size:
            self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.flush_interval_s)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("usage flush failed; rows kept for the next try")

    async def flush(self) -> int:
        async with self._flush_lock:
            if not self.pending:
                return 0
            rows, self.pending = self.pending, []
            segment = self.outbox.rotate()
            if segment is not None:
                self._unretired.append(segment)
            try:
                await self.store(rows)
            except BaseException:
                self.pending[:0] = rows
                raise
            # Every row of those segments is stored now (earlier failures were put back and stored too).
            for old in self._unretired:
                self.outbox.retire(old)
            self._unretired.clear()
            return len(rows)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for attempt in range(5):
            try:
                await self.flush()
                break
            except Exception:
                log.exception("usage flush at shutdown failed (try %d of 5)", attempt + 1)
                await asyncio.sleep(0.5 * (attempt + 1))
        if not self.pending:
            self.outbox.close()
        # Otherwise the rows stay in the outbox segment for the next process to recover.


_writer: UsageWriter | None = None
# Set at startup by routing/observability: sees each event once, after its row is safe (metrics, access log).
observe: Callable[[UsageEvent], None] | None = None


def install(writer: UsageWriter | None) -> None:
    global _writer
    _writer = writer


def submit(event: UsageEvent) -> None:
    if _writer is None:
        raise RuntimeError("the usage writer is not running: the gateway's lifespan startup has not run")
    _writer.submit(event)
    if observe is not None:
        observe(event)


def queue_depth() -> int:
    """Rows accepted but not yet stored in the database."""
    return len(_writer.pending) if _writer is not None else 0
