"""The gateway's Prometheus metrics, and `observe_usage`, which feeds them one UsageEvent per /v1 request.

Values live in the node's shared directory (node_files.py), so /metrics reports the node whichever worker
answers. Requests are first counted in plain Python (`observe_usage`: ~2 µs) and written to the shared files
by `flush_pending` about once a second and whenever this worker answers a scrape; writing every event
straight to the memory-mapped files cost ~19 µs a request. So another worker's last second may be missing
from a scrape, and a worker killed with SIGKILL loses at most its last second of counts.

Every metric below has labels: a labelled metric opens its file on first use, after the lifespan has claimed
this process's liveness, never at import (node_files.sweep would take an unclaimed file for a dead
process's). The unlabelled worker gauges are created by the lifespan for the same reason.

Label values come from the catalogue snapshot, not from the caller: an alias the snapshot does not know is
counted as "unknown", so a client sending random model names cannot grow the series without bound.
"""

import logging
import os
import resource
from bisect import bisect_left

from django.conf import settings
from prometheus_client import Counter, Gauge, Histogram

from billing import usage_writer
from core.values import DEFAULT_POLICY
from routing.control_plane import refresher, snapshot
from routing.observability import node_files

log = logging.getLogger(__name__)

node_files.use_directory(settings.TOLLWAY_METRICS_DIR)

ROUTE = ("endpoint", "alias", "deployment", "provider")
# Seconds; chat completions run from tens of milliseconds (cached, embeddings) to minutes (long generations).
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, float("inf"))

REQUESTS = Counter("tollway_requests", "Authenticated /v1 requests, by outcome.", [*ROUTE, "code"], registry=None)
REQUEST_SECONDS = Histogram(
    "tollway_request_duration_seconds", "Gateway time per request.", ROUTE, buckets=LATENCY_BUCKETS_S, registry=None
)
TTFB_SECONDS = Histogram(
    "tollway_time_to_first_byte_seconds",
    "Until the first byte of the answer (first chunk when streaming).",
    ROUTE,
    buckets=LATENCY_BUCKETS_S,
    registry=None,
)
UPSTREAM_SECONDS = Histogram(
    "tollway_upstream_duration_seconds",
    "Time spent on upstream calls, fail-over attempts included.",
    ROUTE,
    buckets=LATENCY_BUCKETS_S,
    registry=None,
)
TOKENS = Counter("tollway_tokens", "Tokens, by kind: prompt, completion, cached.", [*ROUTE, "kind"], registry=None)
COST_USD = Counter(
    "tollway_cost_usd", "Cost at deployment prices (the ledger is exact; this is float).", ROUTE, registry=None
)
ERRORS = Counter("tollway_errors", "Failed requests, by error type.", [*ROUTE, "code", "error_type"], registry=None)
ATTEMPTS = Counter(
    "tollway_upstream_attempts", "Upstream attempts, fail-overs and retries included.", ROUTE, registry=None
)
FALLBACKS = Counter(
    "tollway_fallback_requests", "Requests that needed more than one upstream attempt.", ROUTE, registry=None
)
# Readiness as the last /readyz or /metrics found it (the most recent of any live worker): 1 answering, 0 not.
KEY_LOOKUPS = Counter(
    "tollway_key_lookups",
    "Keys presented, by how they were resolved: hit (in memory), found / unknown (looked up in the database), "
    "negative (remembered as unknown), throttled (past TOLLWAY_KEY_LOOKUPS_PER_S).",
    ["result"],
    registry=None,
)
DEPENDENCY_UP = Gauge(
    "tollway_dependency_up",
    "Each readiness check (database, redis, broker, snapshot, limits): 1 if it passed, 0 if not.",
    ["dependency"],
    multiprocess_mode="livemostrecent",
    registry=None,
)
READINESS = Gauge(
    "tollway_readiness",
    "1 for the gateway's readiness now (ready, degraded: serving without a dependency, not_ready: 503), else 0.",
    ["status"],
    multiprocess_mode="livemostrecent",
    registry=None,
)
BREAKER_CODES = {"closed": 0, "half-open": 1, "open": 2}
BREAKER_STATE = Gauge(
    "tollway_breaker_state",
    "Each deployment's circuit breaker: 0 closed, 1 half-open (probing), 2 open (skipped); the worst any live "
    "worker sees (with Redis, every worker sees the same).",
    ["deployment"],
    multiprocess_mode="livemax",
    registry=None,
)


class _RouteTotals:
    """What one (endpoint, alias, deployment, provider) saw since the last flush, in plain Python numbers."""

    __slots__ = ("requests", "errors", "latency", "ttfb", "upstream", "tokens", "cost_usd", "attempts", "fallbacks")

    def __init__(self) -> None:
        self.requests: dict[int, int] = {}  # status -> count
        self.errors: dict[tuple[int, str], int] = {}  # (status, error type) -> count
        # Per histogram: a count per bucket, then the sum of the observations.
        self.latency, self.ttfb, self.upstream = [0] * _BUCKET_COUNT, [0] * _BUCKET_COUNT, [0] * _BUCKET_COUNT
        self.tokens = [0, 0, 0]  # prompt, completion, cached
        self.cost_usd = 0.0
        self.attempts = self.fallbacks = 0


_BOUNDS = LATENCY_BUCKETS_S[:-1]
_BUCKET_COUNT = len(LATENCY_BUCKETS_S) + 1  # the buckets, and the sum in the last slot
_pending: dict[tuple[str, str, str, str], _RouteTotals] = {}


def _add_seconds(histogram: list, milliseconds: float) -> None:
    seconds = milliseconds / 1000
    histogram[bisect_left(_BOUNDS, seconds)] += 1  # the first bucket whose bound is >= the value ("le")
    histogram[-1] += seconds


def observe_usage(event) -> None:
    """Count one closed UsageEvent. Runs on the request path, so it only adds to this process's pending totals
    (about 2 µs); `flush_pending` moves them to the shared files about once a second."""
    alias = event.alias
    # A call whose model matched no alias is stored with alias "" (billing/usage.py); only /v1/models has none.
    if (alias or event.endpoint != "models") and alias not in snapshot.current().aliases:
        alias = "unknown"
    route = (event.endpoint, alias, event.deployment, event.provider)
    totals = _pending.get(route)
    if totals is None:
        totals = _pending[route] = _RouteTotals()
    status = event.status
    totals.requests[status] = totals.requests.get(status, 0) + 1
    if event.error_type:
        failure = (status, event.error_type)
        totals.errors[failure] = totals.errors.get(failure, 0) + 1
    if event.latency_ms is not None:
        _add_seconds(totals.latency, event.latency_ms)
    if event.ttfb_ms is not None:
        _add_seconds(totals.ttfb, event.ttfb_ms)
    if event.upstream_latency_ms is not None:
        _add_seconds(totals.upstream, event.upstream_latency_ms)
    tokens = totals.tokens
    tokens[0] += event.prompt_tokens
    tokens[1] += event.completion_tokens
    tokens[2] += event.cached_tokens
    if event.cost_usd:
        totals.cost_usd += float(event.cost_usd)  # the exposition format is float; money stays Decimal elsewhere
    totals.attempts += event.attempts
    if event.attempts > 1:
        totals.fallbacks += 1


def take_pending() -> dict:
    """Hand over what was counted since the last call. Call it on the event loop, where `observe_usage` runs,
    so no increment lands in a dictionary that is already being flushed."""
    global _pending
    taken, _pending = _pending, {}
    return taken


def _add_histogram(histogram: Histogram, route: tuple, counts: list) -> None:
    if not any(counts[:-1]):
        return
    child = histogram.labels(*route)
    # prometheus_client observes one value at a time; a flush adds a second's worth per bucket at once.
    for bucket, count in zip(child._buckets, counts[:-1], strict=True):
        if count:
            bucket.inc(count)
    child._sum.inc(counts[-1])


def flush_pending(pending: dict) -> None:
    """Add totals from `take_pending` to this process's metric files (mmap writes: off the event loop)."""
    for route, totals in pending.items():
        for status, count in totals.requests.items():
            REQUESTS.labels(*route, str(status)).inc(count)
        for (status, error_type), count in totals.errors.items():
            # Error types come from our error classes and the providers' codes: few, but not ours to trust.
            ERRORS.labels(*route, str(status), error_type[:64]).inc(count)
        _add_histogram(REQUEST_SECONDS, route, totals.latency)
        _add_histogram(TTFB_SECONDS, route, totals.ttfb)
        _add_histogram(UPSTREAM_SECONDS, route, totals.upstream)
        for kind, count in zip(("prompt", "completion", "cached"), totals.tokens, strict=True):
            if count:
                TOKENS.labels(*route, kind).inc(count)
        if totals.cost_usd:
            COST_USD.labels(*route).inc(totals.cost_usd)
        if totals.attempts:
            ATTEMPTS.labels(*route).inc(totals.attempts)
        if totals.fallbacks:
            FALLBACKS.labels(*route).inc(totals.fallbacks)


class WorkerGauges:
    """This worker's state, summed (or the minimum taken) over the node's live workers at scrape time.
    Created once liveness is claimed (an unlabelled gauge opens its file at once); sampled about once a
    second, and by the worker answering a scrape."""

    def __init__(self) -> None:
        def gauge(name: str, documentation: str, mode: str = "livesum") -> Gauge:
            return Gauge(name, documentation, multiprocess_mode=mode, registry=None)

        self.usage_queue_rows = gauge("tollway_usage_queue_rows", "Usage rows waiting for the batched writer.")
        self.snapshot_loaded_at = gauge(
            "tollway_snapshot_loaded_timestamp_seconds", "Load time of the oldest snapshot a worker serves.", "livemin"
        )
        self.change_feed_version = gauge(
            "tollway_change_feed_version", "Change-feed version applied by the worker furthest behind.", "livemin"
        )
        self.key_cache_size = gauge("tollway_key_cache_size", "API keys held in memory by live workers.")
        self._key_lookups_sampled: dict[str, int] = {}
        self._breakers_of = None  # the snapshot whose deployments were last all reported
        self._breaker_codes: dict[str, int] = {}
        self.processes = gauge("tollway_worker_processes", "Live gateway worker processes.")
        self.resident_memory = gauge("tollway_worker_resident_memory_bytes", "Resident memory of live workers.")
        self.cpu_seconds = gauge("tollway_worker_cpu_seconds", "CPU time used by live workers.")
        self.open_fds = gauge("tollway_worker_open_fds", "Open file descriptors of live workers.")
        self.processes.set(1)

    def _report_breakers(self) -> None:
        """Each deployment's breaker gauge, written when it changes: a catalogue of a thousand deployments would
        otherwise cost a thousand metric-file writes a second in every idle worker."""
        current = snapshot.current()
        if current.aliases is not self._breakers_of:  # the same catalogue while only loaded_at moves
            self._breakers_of = current.aliases
            states = breaker_states()  # every deployment, closed ones included, once per catalogue change
        else:
            states = pipeline_breakers().snapshot()  # only the ones this process has seen fail or recover
        for deployment, state in states.items():
            code = BREAKER_CODES[state]
            if self._breaker_codes.get(deployment) != code:
                BREAKER_STATE.labels(deployment).set(code)
                self._breaker_codes[deployment] = code

    def sample(self) -> None:
        """Reads /proc: run it off the event loop."""
        self.usage_queue_rows.set(usage_writer.queue_depth())
        self.snapshot_loaded_at.set(snapshot.current().loaded_at)
        self.change_feed_version.set(snapshot.current().version)
        keys = refresher.keys()
        self.key_cache_size.set(len(keys))
        self._report_breakers()
        for result, count in list(keys.counts.items()):
            # A new cache (a restarted control plane) starts its counts again from zero.
            delta = count - min(self._key_lookups_sampled.get(result, 0), count)
            if delta:
                KEY_LOOKUPS.labels(result).inc(delta)
            self._key_lookups_sampled[result] = count
        times = os.times()
        self.cpu_seconds.set(times.user + times.system)
        try:
            with open("/proc/self/statm", "rb") as statm:
                self.resident_memory.set(int(statm.read().split()[1]) * resource.getpagesize())
            self.open_fds.set(len(os.listdir("/proc/self/fd")))
        except OSError:
            pass  # not Linux: these two stay unreported


def pipeline_breakers():
    from routing.proxy import pipeline  # the gateway's engine; imported late: metrics load before the proxy

    return pipeline.engine().breakers


def breaker_states(aliases=None, policies=None) -> dict[str, str]:
    """Every deployment's breaker in this process's engine, by the breaker settings of the alias it serves (the
    strictest reading when several aliases share it). The catalogue is the snapshot's unless given (a console
    page passes the database's: its process may serve no /v1 traffic)."""
    board = pipeline_breakers()
    if aliases is None:
        current = snapshot.current()
        aliases, policies = current.aliases, current.policies
    states: dict[str, str] = {}
    for alias, targets in aliases.items():
        policy = (policies or {}).get(alias, DEFAULT_POLICY)
        for target in targets:
            state = board.state(target.deployment, policy.breaker)
            if BREAKER_CODES[state] >= BREAKER_CODES[states.get(target.deployment, "closed")]:
                states[target.deployment] = state
    return states


def stored_breaker_states() -> dict[str, str]:
    """breaker_states for the catalogue as stored, for console pages (run them off the event loop: it reads the
    database)."""
    from routing.control_plane import loader

    stored = loader.catalogue()
    return breaker_states(stored.aliases, stored.policies)


def record_readiness(report) -> None:
    """Set the readiness gauges from a readiness.Readiness (mmap writes: off the event loop)."""
    for name, check in report.checks.items():
        DEPENDENCY_UP.labels(name).set(1 if check["ok"] else 0)
    for status in ("ready", "degraded", "not ready"):
        READINESS.labels(status.replace(" ", "_")).set(1 if report.status == status else 0)
