"""/healthz, /readyz and /metrics as raw ASGI handlers: config/asgi.py routes them before Django, so a probe
costs no middleware and still answers when the console's request cycle is busy.

- /healthz: liveness. The process answers; no I/O, so a slow database never gets a worker restarted.
- /readyz: readiness. 200 {"status": "ready" | "degraded", "degraded": [...], "checks": {...}} while the
  gateway can serve (degraded names what it serves without), 503 {"status": "not ready", ...} when it cannot
  (readiness.py says which checks decide).
- /metrics: Prometheus text for the whole node; "Authorization: Bearer $TOLLWAY_METRICS_TOKEN" when set.
"""

import asyncio
import hmac

import orjson
from django.conf import settings

from routing.observability import lifespan, readiness, scrape
from routing.observability import metrics as gateway_metrics

JSON = b"application/json"


async def _respond(send, status: int, body: bytes, content_type: bytes, extra_headers=()) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *extra_headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def healthz(scope, receive, send) -> None:
    await _respond(send, 200, orjson.dumps({"status": "ok"}), JSON)


async def readyz(scope, receive, send) -> None:
    report = await readiness.run_checks()
    await asyncio.to_thread(gateway_metrics.record_readiness, report)
    await _respond(send, 200 if report.can_serve else 503, orjson.dumps(report.to_json()), JSON)


def _is_authorised(scope) -> bool:
    token = settings.TOLLWAY_METRICS_TOKEN
    if not token:
        return True
    for name, value in scope["headers"]:
        if name == b"authorization":
            return hmac.compare_digest(value, f"Bearer {token}".encode())
    return False


async def metrics(scope, receive, send) -> None:
    if not _is_authorised(scope):
        body = orjson.dumps({"error": "a valid bearer token is required for /metrics"})
        await _respond(send, 401, body, JSON, [(b"www-authenticate", b'Bearer realm="metrics"')])
        return
    # The dependencies as this scrape finds them (bounded by TOLLWAY_READY_TIMEOUT_S), not as the last probe did.
    report = await readiness.run_checks()
    # Reads every worker's files and the outbox directory: a thread, not the event loop.
    body = await asyncio.to_thread(_write_and_render, gateway_metrics.take_pending(), report)
    await _respond(send, 200, body, scrape.CONTENT_TYPE.encode())


def _write_and_render(pending: dict, report: readiness.Readiness) -> bytes:
    # The answering worker's own numbers are current; the others' are at most a second old.
    lifespan.write_worker_metrics(pending)
    gateway_metrics.record_readiness(report)
    return scrape.render()


ROUTES = {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics}
