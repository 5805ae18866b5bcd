"""How fast each deployment answers, for the lowest-latency strategy: an EWMA of whole-call latency and of time to
first token (streams), per deployment, kept per process and shared across processes through Redis.

A board keeps its own observations apart from what it last heard from the others. It shares only its own (so a
view never comes back to the process that sent it and counts twice) and estimates from both, blended by samples.
Estimates expire `max_age_s` after their last sample: a deployment that stopped being chosen because it was slow
becomes unknown again, and the strategy's exploration measures it anew.
"""

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# deployment -> (latency EWMA ms, time-to-first-token EWMA ms or None, samples)
Estimates = dict[str, tuple[float, float | None, int]]

MAX_FIELDS_READ = 10_000  # a hash grown past this (many processes x deployments) is read in part, not whole
MAX_DEPLOYMENT_CHARS = 150  # Deployment.name's max_length
MAX_LATENCY_MS = 86_400_000.0  # a day: anything longer read from Redis is garbage, not a measurement
MAX_SAMPLES = 10**15


@dataclass(slots=True)
class _Ewma:
    latency_ms: float
    ttfb_ms: float | None
    samples: int
    last_at: float  # board clock


class LatencyBoard:
    """EWMA of latency (whole call, ms) and time to first token (streams, ms) per deployment."""

    def __init__(
        self, *, alpha: float = 0.2, clock: Callable[[], float] = time.monotonic, max_age_s: float = 300.0
    ) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], not {alpha}")
        self.alpha = alpha
        self.clock = clock
        self.max_age_s = max_age_s
        self._own: dict[str, _Ewma] = {}
        self._others: Estimates = {}
        self._others_at = -math.inf

    def observe(self, deployment: str, *, latency_ms: float, ttfb_ms: float | None = None) -> None:
        # One NaN would stick in an EWMA for good; a negative time is a clock bug, not a fast deployment.
        if not _is_duration(latency_ms):
            return
        if ttfb_ms is not None and not _is_duration(ttfb_ms):
            ttfb_ms = None
        now = self.clock()
        entry = self._own.get(deployment)
        if entry is None or now - entry.last_at > self.max_age_s:
            self._own[deployment] = _Ewma(latency_ms, ttfb_ms, 1, now)
            return
        entry.latency_ms += self.alpha * (latency_ms - entry.latency_ms)
        if ttfb_ms is not None:
            entry.ttfb_ms = ttfb_ms if entry.ttfb_ms is None else entry.ttfb_ms + self.alpha * (ttfb_ms - entry.ttfb_ms)
        entry.samples = min(entry.samples + 1, MAX_SAMPLES)
        entry.last_at = now

    def estimate_ms(self, deployment: str, *, stream: bool = False) -> float | None:
        """The blended estimate; for a stream, time to first token when any was measured. None: no samples."""
        parts = []
        own = self._fresh_own(deployment)
        if own is not None:
            parts.append((own.latency_ms, own.ttfb_ms, own.samples))
        if self.clock() - self._others_at <= self.max_age_s and deployment in self._others:
            parts.append(self._others[deployment])
        blended = blend(parts)
        if blended is None:
            return None
        latency_ms, ttfb_ms, _ = blended
        return ttfb_ms if stream and ttfb_ms is not None else latency_ms

    def export(self) -> Estimates:
        """This process's own current estimates: what it shares with the others."""
        exported = {}
        for deployment in self._own:
            entry = self._fresh_own(deployment)
            if entry is not None:
                exported[deployment] = (entry.latency_ms, entry.ttfb_ms, entry.samples)
        return exported

    def merge(self, shared: Estimates) -> None:
        """Take the other processes' view (all of them, already blended: SharedLatency.sync_once gives it). It
        replaces the view last merged; estimates then blend it with this process's own, weighted by samples."""
        self._others = {d: entry for d, entry in shared.items() if _is_estimate(d, entry)}
        self._others_at = self.clock()

    def _fresh_own(self, deployment: str) -> _Ewma | None:
        entry = self._own.get(deployment)
        if entry is None or self.clock() - entry.last_at > self.max_age_s:
            return None
        return entry


def blend(parts: Iterable[tuple[float, float | None, int]]) -> tuple[float, float | None, int] | None:
    """Sample-weighted mean of several estimates of one deployment; None when there are none. For latency it is
    associative: blending the others first, then this process, gives what blending everyone at once does. First
    token times are weighted by the same whole-call counts, among the estimates that have one (an estimate carries
    one count): an approximation where processes stream different shares of their calls."""
    parts = [part for part in parts if part[2] > 0]
    if not parts:
        return None
    samples = sum(part[2] for part in parts)
    latency_ms = sum(part[0] * part[2] for part in parts) / samples
    timed = [part for part in parts if part[1] is not None]
    ttfb_ms = None
    if timed:
        ttfb_ms = sum(part[1] * part[2] for part in timed) / sum(part[2] for part in timed)
    return latency_ms, ttfb_ms, samples


class SharedLatency:
    """Shares boards across processes through Redis: every `interval_s` each process writes its own estimates to
    the hash `{prefix}:latency`, one field per deployment and process (`{deployment}@{process_id}`, its value JSON
    naming both, with the wall time it was written), and merges what the others wrote. Fields not rewritten for
    `stale_after_s` (a process that stopped) are ignored and deleted; the hash expires when every process has.
    Never on the request path; a Redis failure is logged once, and the next interval tries again."""

    def __init__(
        self,
        board: LatencyBoard,
        *,
        redis_client,
        prefix: str,
        interval_s: float = 1.0,
        process_id: str,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.board = board
        self.redis = redis_client
        self.key = f"{prefix}:latency"
        self.interval_s = interval_s
        self.process_id = process_id
        self.wall_clock = wall_clock
        # Wall clocks of different hosts disagree by a little: several intervals, and never under half a minute.
        self.stale_after_s = max(10 * interval_s, 30.0)
        self._is_failing = False
        self._has_crashed = False

    async def sync_once(self) -> None:
        try:
            await self._write_own()
            others, stale_fields = await self._read_others()
            if stale_fields:
                await self.redis.hdel(self.key, *stale_fields)
        except (RedisError, OSError) as error:
            if not self._is_failing:
                self._is_failing = True
                log.warning("latency sharing paused: Redis failed (%s); trying every %s s", error, self.interval_s)
            return
        if self._is_failing:
            self._is_failing = False
            log.info("latency sharing works again")
        self.board.merge(others)

    async def run_forever(self, *, idle_every: int = 10) -> None:
        """sync_once every interval while this process routes; while it learns nothing new (idle), only every
        `idle_every` intervals, so an idle gateway costs next to nothing."""
        last_export, idle_rounds = None, 0
        while True:
            try:
                export = self.board.export()
                idle_rounds = idle_rounds + 1 if export == last_export else 0
                if idle_rounds % idle_every == 0:
                    await self.sync_once()
                last_export = export
            except Exception:
                # A bug here must not end sharing for the life of the process, nor fill the log every second.
                if not self._has_crashed:
                    self._has_crashed = True
                    log.exception("latency sharing failed; trying again every %s s", self.interval_s)
            await asyncio.sleep(self.interval_s)

    async def _write_own(self) -> None:
        now = self.wall_clock()
        fields = {
            f"{deployment}@{self.process_id}": json.dumps(
                {
                    "deployment": deployment,
                    "process": self.process_id,
                    "latency_ms": latency_ms,
                    "ttfb_ms": ttfb_ms,
                    "samples": samples,
                    "at": now,
                }
            )
            for deployment, (latency_ms, ttfb_ms, samples) in self.board.export().items()
        }
        if not fields:
            return
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self.key, mapping=fields)
        pipe.expire(self.key, math.ceil(self.stale_after_s))
        await pipe.execute()

    async def _read_others(self) -> tuple[Estimates, list]:
        values: dict = {}
        cursor = 0
        while len(values) < MAX_FIELDS_READ:
            cursor, page = await self.redis.hscan(self.key, cursor=cursor, count=1000)
            for field, value in page.items():
                if len(values) >= MAX_FIELDS_READ:
                    break
                values[field] = value
            if cursor == 0:
                break

        now = self.wall_clock()
        parts: dict[str, list[tuple[float, float | None, int]]] = {}
        stale_fields = []
        for field, value in values.items():
            entry = _parse_field(value)
            if entry is None:
                continue  # another version's format, or garbage: not ours to judge or delete
            process, at, deployment, estimate = entry
            if now - at > self.stale_after_s:
                stale_fields.append(field)
            elif process != self.process_id:
                parts.setdefault(deployment, []).append(estimate)
        others = {deployment: blend(estimates) for deployment, estimates in parts.items()}
        return others, stale_fields


def _parse_field(value) -> tuple[str, float, str, tuple[float, float | None, int]] | None:
    try:
        data = json.loads(value)
    except (TypeError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    process, at, deployment = data.get("process"), data.get("at"), data.get("deployment")
    estimate = (data.get("latency_ms"), data.get("ttfb_ms"), data.get("samples"))
    if not isinstance(process, str) or not _is_number(at) or not _is_estimate(deployment, estimate):
        return None
    latency_ms, ttfb_ms, samples = estimate
    return process, float(at), deployment, (float(latency_ms), None if ttfb_ms is None else float(ttfb_ms), samples)


def _is_estimate(deployment: object, entry: object) -> bool:
    if not isinstance(deployment, str) or not 0 < len(deployment) <= MAX_DEPLOYMENT_CHARS:
        return False
    if not isinstance(entry, tuple | list) or len(entry) != 3:
        return False
    latency_ms, ttfb_ms, samples = entry
    return (
        _is_duration(latency_ms)
        and (ttfb_ms is None or _is_duration(ttfb_ms))
        and isinstance(samples, int)
        and not isinstance(samples, bool)
        and 0 < samples <= MAX_SAMPLES
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_duration(value: object) -> bool:
    return _is_number(value) and 0 <= value <= MAX_LATENCY_MS
