"""Usage rows leave the request path here: appended to the outbox, then stored in batches in the background.

`submit()` is the only call on the request path (a dict build and one file append). A background task stores
pending rows every TOLLWAY_USAGE_FLUSH_INTERVAL_S, or sooner when a batch fills. `close()` on shutdown stores
everything still pending, so a graceful stop (SIGTERM) loses nothing; a hard kill leaves the rows in the
outbox for the next process (billing/outbox.py).

What is durable, and when: a row is safe from a crash of this process once `submit()` has appended it to the
outbox; it leaves the outbox only when the segment holding it is deleted, after every row of that segment is
stored. Memory holds only copies (dropped in a long outage, read back from disk) and the rows a failed disk
write could not take, which are never dropped. A crash at any step leaves each row in the database, in a
segment, or both; storing ignores request ids already stored, so recovery still yields one record each.

While the database is away, storing is retried with exponential backoff up to TOLLWAY_USAGE_RETRY_MAX_S and
the gateway keeps serving; one warning when storing starts failing, one info line when it recovers.

A stream writes a provisional row when it starts (`begin_stream`), carried from segment to segment while the
stream is open and superseded by the final row: if the process dies mid-stream, recovery stores the
provisional one as interrupted, so a call whose client received any of its stream is still on record.
"""

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from billing.outbox import Outbox, Segment, read_batch
from billing.pricing import cost_of
from billing.usage import UsageEvent
from core.values import Target, TokenUsage

log = logging.getLogger(__name__)

StoreRows = Callable[[list[dict]], Awaitable[object]]
Sleep = Callable[[float], Awaitable[object]]

# A provisional row stored by recovery: the stream was cut by the gateway process dying, not by its client.
INTERRUPTED = "gateway_interrupted"


@dataclass(frozen=True, slots=True)
class Health:
    pending_rows: int  # accepted, not yet stored in the database
    oldest_pending_s: float | None  # how long the oldest of them has waited
    is_failing: bool  # the last attempt to store failed
    failing_for_s: float | None
    memory_only_rows: int  # rows the outbox could not take (disk full): lost if this process dies
    open_segments: int  # outbox files held open (the bound: 1 current + MAX_SEALED sealed)


class UsageWriter:
    def __init__(
        self,
        *,
        outbox: Outbox,
        store: StoreRows,
        flush_interval_s: float,
        batch_size: int,
        retry_max_s: float = 30.0,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.outbox = outbox
        self.store = store
        self.flush_interval_s = flush_interval_s
        self.batch_size = batch_size
        self.retry_max_s = max(retry_max_s, flush_interval_s)
        self._sleep, self._clock = sleep, clock
        outbox.clock = clock
        # Rows the outbox could not write: in memory only, kept until stored or written to a new segment.
        self.memory_only: list[dict] = []
        self._open_streams: dict[str, dict] = {}  # request id -> its provisional row
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._flush_lock = asyncio.Lock()
        self._failures = 0
        self._failing_since: float | None = None

    def start(self) -> None:
        self.outbox.open()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="usage-writer")

    def submit(self, event: UsageEvent) -> None:
        row = event.to_row()
        self._open_streams.pop(row["request_id"], None)
        if not self.outbox.append(row):
            self.memory_only.append(row)
        if self.pending_rows() >= self.batch_size and self._failures == 0:
            self._wake.set()

    def begin_stream(self, event: UsageEvent, *, target: Target, prompt_tokens: int) -> None:
        """Note a stream that has started: what to bill if this process dies before it ends."""
        row = event.to_row()
        tokens = TokenUsage(prompt_tokens=prompt_tokens, completion_tokens=0, is_estimated=True)
        # A cascade's held steps were billed already: a crash mid-stream must not forget them.
        cost = str(cost_of(tokens, target.price) + event.discarded_cost_usd)
        row.update(
            provisional=True,
            status=200,
            error_type=INTERRUPTED,
            prompt_tokens=prompt_tokens,
            completion_tokens=0,
            cached_tokens=0,
            estimated=True,
            cost_usd=cost,
            baseline_cost_usd=cost,
        )
        self._open_streams[row["request_id"]] = row
        # Not durable (disk full)? Then a crash mid-stream leaves no record of it; the final row is still kept.
        self.outbox.append(row, is_provisional=True)

    def pending_rows(self) -> int:
        return self.outbox.unstored_rows() + len(self.memory_only)

    def health(self) -> Health:
        now = self._clock()
        oldest = self.outbox.oldest_row_at()
        segments = len(self.outbox.sealed) + (self.outbox.current is not None)
        return Health(
            pending_rows=self.pending_rows(),
            oldest_pending_s=round(now - oldest, 3) if oldest is not None else None,
            is_failing=self._failures > 0,
            failing_for_s=round(now - self._failing_since, 3) if self._failing_since is not None else None,
            memory_only_rows=len(self.memory_only),
            open_segments=segments,
        )

    def retry_delay_s(self) -> float:
        """Exponential backoff from the flush interval to retry_max_s, with jitter so processes spread out."""
        ceiling = min(self.retry_max_s, self.flush_interval_s * 2 ** min(self._failures, 30))
        return ceiling * (0.5 + random.random() / 2)

    async def _run(self) -> None:
        while True:
            if self._failures:
                # Not woken by new rows: a database that is away must not be asked again on every request.
                await self._sleep(self.retry_delay_s())
            else:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.flush_interval_s)
                except TimeoutError:
                    pass
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:
                self._note_failure(exc)
            else:
                self._note_success()

    def _note_failure(self, exc: Exception) -> None:
        self._failures += 1
        if self._failures == 1:
            self._failing_since = self._clock()
            log.warning(
                "storing usage records failed (%s: %s); %d rows kept in the outbox, retrying with backoff",
                type(exc).__name__,
                str(exc).strip().splitlines()[0] if str(exc).strip() else "",
                self.pending_rows(),
            )
        else:
            log.debug("storing usage records failed again (try %d): %s", self._failures, exc)

    def _note_success(self) -> None:
        if self._failures:
            log.info(
                "storing usage records works again after %.1f s and %d failed tries; %d rows pending",
                self._clock() - self._failing_since,
                self._failures,
                self.pending_rows(),
            )
        self._failures, self._failing_since = 0, None

    async def flush(self, *, is_final: bool = False) -> int:
        """Store every row pending now; raises on the first failure, with nothing lost (the next try resumes).
        `is_final` (shutdown) also stores the provisional rows of streams still open, as interrupted."""
        async with self._flush_lock:
            outbox = self.outbox
            if outbox.current is None and not is_final:
                outbox.reopen(carry=list(self._open_streams.values()))
            if outbox.current is not None:
                # A segment again: make rows a failed write left in memory durable first.
                while self.memory_only and outbox.append(self.memory_only[0]):
                    del self.memory_only[0]
            stored = 0
            # Sealed segments first (oldest rows), then the current one, sealed now; twice at most, so a busy
            # gateway still returns. One rotation per round of storing, never one per failed try: the number
            # of open files stays bounded however long the database is away.
            for _ in range(2):
                if not outbox.sealed and outbox.current is not None and (outbox.current.rows or is_final):
                    if is_final:
                        outbox.seal()  # nothing more comes: no new segment (and no new file) needed
                    else:
                        outbox.rotate(carry=list(self._open_streams.values()))
                if not outbox.sealed:
                    break
                for segment in list(outbox.sealed):
                    stored += await self._store_segment(segment, is_final=is_final)
                    outbox.retire(segment)
            while self.memory_only:
                batch = self.memory_only[: self.batch_size]
                await self.store(batch)
                del self.memory_only[: len(batch)]
                stored += len(batch)
            return stored

    async def _store_segment(self, segment: Segment, *, is_final: bool) -> int:
        stored = 0
        while True:
            if segment.cached is not None:
                rows = segment.cached[: self.batch_size]
                next_offset = None
            else:
                # Read back from disk off the event loop: the copy was dropped to keep memory bounded.
                rows, next_offset = await asyncio.to_thread(
                    read_batch, segment.path, offset=segment.stored_offset, limit=self.batch_size
                )
            if not rows:
                return stored
            final_rows = [row for row in rows if self._is_to_store(row, is_final=is_final)]
            if final_rows:
                await self.store(final_rows)
            if next_offset is None:
                del segment.cached[: len(rows)]
            else:
                segment.stored_offset = next_offset
            finals = sum(1 for row in rows if not row.get("provisional"))
            segment.stored_rows += finals
            stored += finals

    def _is_to_store(self, row: dict, *, is_final: bool) -> bool:
        if not row.get("provisional"):
            return True
        # A live stream's provisional row is only a safeguard against a crash; its final row is the record.
        return is_final and row["request_id"] in self._open_streams

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
                await self.flush(is_final=True)
                break
            except Exception as exc:
                log.warning("storing usage records at shutdown failed (try %d of 5): %s", attempt + 1, exc)
                await self._sleep(0.5 * (attempt + 1))
        if not self.pending_rows():
            self.outbox.close()
        else:
            # The rows stay in the outbox segments for the next process to recover.
            log.warning("%d usage rows left in the outbox for the next process", self.outbox.unstored_rows())
            if self.memory_only:
                log.error("%d usage rows could not be written to disk nor stored: lost", len(self.memory_only))
            self.outbox.release()


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


def begin_stream(event: UsageEvent, *, target: Target, prompt_tokens: int) -> None:
    if _writer is not None:
        _writer.begin_stream(event, target=target, prompt_tokens=prompt_tokens)


def queue_depth() -> int:
    """Rows accepted but not yet stored in the database."""
    return _writer.pending_rows() if _writer is not None else 0


def health() -> Health | None:
    """For /readyz and /metrics: pending rows, the oldest one's age, whether storing is failing (as a dict:
    dataclasses.asdict). None when no writer runs in this process."""
    return _writer.health() if _writer is not None else None
