"""What each gateway process starts for operations (config/asgi.py calls start/stop around the gateway's own
lifespan): its place in the node's metrics directory, the per-request observer, the task that writes this
worker's metrics to the shared files, readiness checks and, when configured, tracing."""

import asyncio
import logging

from django.conf import settings

from billing import usage_writer
from routing.observability import logs, metrics, node_files, readiness, tracing

log = logging.getLogger(__name__)

# How stale another worker's numbers may be in a scrape (Prometheus scrapes every 15-60 s).
WRITE_INTERVAL_S = 1.0

_worker_gauges: metrics.WorkerGauges | None = None
_writer: asyncio.Task | None = None
_has_failed_to_observe = False


def observe(event) -> None:
    """The usage writer's observer: once per /v1 request, on the request path, after the row is queued."""
    global _has_failed_to_observe
    try:
        metrics.observe_usage(event)
        logs.log_access(event)
        if tracing.is_on():
            tracing.record(event)
    except Exception:
        # Losing a metric must never fail a request that has already succeeded; say so once, not per request.
        if not _has_failed_to_observe:
            _has_failed_to_observe = True
            log.exception("observing a request failed; metrics and access logs may be incomplete")


def write_worker_metrics(pending: dict) -> None:
    """Move this worker's counts and gauges to the shared files (mmap writes and /proc reads: off the loop).
    `pending` comes from metrics.take_pending(), taken on the event loop."""
    metrics.flush_pending(pending)
    if _worker_gauges is not None:
        _worker_gauges.sample()


async def _write_forever() -> None:
    while True:
        await asyncio.sleep(WRITE_INTERVAL_S)
        try:
            await asyncio.to_thread(write_worker_metrics, metrics.take_pending())
        except Exception:
            log.exception("writing this worker's metrics failed; a second of counts is lost")


def _join_node() -> None:
    global _worker_gauges
    directory = settings.TOLLWAY_METRICS_DIR
    with node_files.directory_lock(directory):
        dead = node_files.sweep(directory, is_starting=True)
        node_files.claim_liveness(directory)
    if dead:
        log.info("metrics of %d stopped worker process(es) folded into the node's totals", len(dead))
    if _worker_gauges is None:
        _worker_gauges = metrics.WorkerGauges()


async def start() -> None:
    global _writer
    await asyncio.to_thread(_join_node)
    await asyncio.to_thread(write_worker_metrics, {})
    readiness.register_builtin_checks()
    logs.choose_access_path()
    if settings.OTEL_EXPORTER_OTLP_ENDPOINT and not tracing.is_on():
        tracing.start(endpoint=settings.OTEL_EXPORTER_OTLP_ENDPOINT, service_name=settings.OTEL_SERVICE_NAME)
    usage_writer.observe = observe
    _writer = asyncio.get_running_loop().create_task(_write_forever(), name="worker-metrics")


async def stop() -> None:
    """After the gateway's own stop: every request has been observed by then."""
    global _writer
    usage_writer.observe = None
    if _writer is not None:
        _writer.cancel()
        _writer = None
    await asyncio.to_thread(_flush, metrics.take_pending())


def _flush(pending: dict) -> None:
    write_worker_metrics(pending)
    tracing.stop()
    for handler in logs.access_log.handlers:
        handler.flush()
