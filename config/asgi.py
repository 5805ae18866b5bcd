"""The ASGI entry point: a thin router that hands /v1/* straight to the DRF proxy views and everything else
to Django's own ASGI application.

Django's ASGI request cycle (middleware, per-request threads, signal hops) costs more than the rest of a
proxied call together (../shared/bench/DRF-FLOORS.md), so /v1 skips it and owns what the cycle would have
given it: request ids, security headers, body limits and error handling. It also runs the gateway's ASGI
lifespan (shared HTTP client, snapshot refresh, usage writer), which Django does not implement.
"""

import asyncio
import io
import logging
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
_django_asgi = get_asgi_application()

from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.core.handlers.asgi import ASGIRequest  # noqa: E402

from billing.usage import new_request_id  # noqa: E402
from core.bounds import clip  # noqa: E402
from core.errors import BodyTooLarge, GatewayError, NotFound  # noqa: E402
from routing import demo_upstream  # noqa: E402
from routing.observability import endpoints as operations  # noqa: E402
from routing.observability import lifespan as observability  # noqa: E402
from routing.proxy import views  # noqa: E402
from routing.proxy.content_encoding import decoded_body  # noqa: E402
from routing.proxy.lifespan import Gateway  # noqa: E402

# The console's static files (admin CSS/JS) are served by Django itself: a few small files, no extra server.
django_app = ASGIStaticFilesHandler(_django_asgi)

log = logging.getLogger("tollway.asgi")

ROUTES = {
    "/v1/chat/completions": views.ChatCompletionsView.as_view(),
    "/v1/embeddings": views.EmbeddingsView.as_view(),
    "/v1/models": views.ModelsView.as_view(),
    "/v1/messages": views.MessagesView.as_view(),
    "/v1/messages/count_tokens": views.CountTokensView.as_view(),
    "/v1/feedback": views.FeedbackView.as_view(),
    "/v1/responses": views.ResponsesView.as_view(),
}
PROMPT_PREFIX, PROMPT_SUFFIX = "/v1/prompts/", "/completions"
PROMPT_VIEW = views.PromptCompletionsView.as_view()
MODEL_DETAIL_PREFIX = "/v1/models/"
RESPONSE_DETAIL_PREFIX = "/v1/responses/"
STORED_RESPONSE_VIEW = views.StoredResponseView.as_view()
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


async def _read_body(receive, limit: int) -> tuple[bytes, bool]:
    """The whole body, unless it is over `limit`: then stop keeping it (it is refused with 413)."""
    chunks, size, too_large = [], 0, False
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionAbortedError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            too_large, chunks = True, []
        elif chunk:
            chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks), too_large


def _error_response(path: str, exc: GatewayError):
    return views.error_response(path, exc)


async def _wait_for_disconnect(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _pump(relay, send) -> None:
    async for piece in relay:
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _stream(relay, send, receive) -> None:
    """Send the relay chunk by chunk; if the client goes away first, cancel it (which cancels the upstream)."""
    pump = asyncio.ensure_future(_pump(relay, send))
    watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
    try:
        await asyncio.wait({pump, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not pump.done():
            pump.cancel()
        watcher.cancel()
        await asyncio.gather(pump, watcher, return_exceptions=True)
    finally:
        await relay.close()


def _stored_response_route(rest: str):
    """/v1/responses/{id} and /v1/responses/{id}/input_items; anything else under it is an unknown route."""
    response_id, _, part = rest.partition("/")
    if not response_id or part not in ("", "input_items"):
        return None, {}
    return STORED_RESPONSE_VIEW, {"response_id": response_id, "part": part}


def _prompt_route(reference: str):
    """/v1/prompts/{slug}/completions and /v1/prompts/{slug}@{version}/completions."""
    if not reference or "/" in reference:
        return None, {}
    return PROMPT_VIEW, {"reference": reference}


async def handle_v1(scope, receive, send) -> None:
    request_id = new_request_id()
    path = scope["path"]
    view, kwargs = ROUTES.get(path), {}
    if view is None and path.startswith(MODEL_DETAIL_PREFIX) and len(path) > len(MODEL_DETAIL_PREFIX):
        view, kwargs = ROUTES["/v1/models"], {"model_id": path[len(MODEL_DETAIL_PREFIX) :]}
    if view is None and path.startswith(RESPONSE_DETAIL_PREFIX):
        view, kwargs = _stored_response_route(path[len(RESPONSE_DETAIL_PREFIX) :])
    if view is None and path.startswith(PROMPT_PREFIX) and path.endswith(PROMPT_SUFFIX):
        view, kwargs = _prompt_route(path[len(PROMPT_PREFIX) : -len(PROMPT_SUFFIX)])
    limit = settings.TOLLWAY_MAX_BODY_BYTES
    try:
        body, too_large = await _read_body(receive, limit)
    except ConnectionAbortedError:
        return
    if view is None:
        response = _error_response(path, NotFound(f"Unknown endpoint {clip(scope['method'], 20)} {clip(path)}."))
    else:
        body_error = BodyTooLarge(f"The request body is larger than {limit} bytes.") if too_large else None
        if body_error is None:
            try:
                body = await decoded_body(scope["headers"], body, limit)
            except GatewayError as exc:
                body, body_error = b"", exc
        request = ASGIRequest(scope, io.BytesIO(body))
        request.META["tollway.request_id"] = request_id
        # What the view reads is the body as decoded (or chunked, without a Content-Length): say its real size,
        # which DRF trusts to decide whether there is a body at all.
        request.META["CONTENT_LENGTH"] = str(len(body))
        if body_error is not None:
            # Raised by the view after authentication, so the call still leaves its usage record.
            request.META["tollway.body_error"] = body_error
        try:
            response = await view(request, **kwargs)
        except Exception:
            log.exception("unhandled error in %s (request %s)", clip(path), request_id)
            response = _error_response(path, GatewayError("The gateway hit an internal error."))
    relay = getattr(response, "tollway_relay", None)
    headers = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in response.items()
        if name.lower() not in {"content-length", "vary", "allow"}
    ]
    headers += SECURITY_HEADERS
    headers.append((b"x-request-id", request_id.encode()))
    if relay is None:
        content = response.content
        headers.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": content})
    else:
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        await _stream(relay, send, receive)


async def handle_lifespan(receive, send) -> None:
    gateway = Gateway()
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await gateway.start()
                await observability.start()
            except Exception as exc:
                log.exception("gateway startup failed")
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            try:
                await gateway.stop()
                await observability.stop()
            finally:
                await send({"type": "lifespan.shutdown.complete"})
            return


async def application(scope, receive, send) -> None:
    kind = scope["type"]
    if kind == "http" and scope["path"].startswith("/v1/"):
        return await handle_v1(scope, receive, send)
    if kind == "lifespan":
        return await handle_lifespan(receive, send)
    if kind == "http" and scope["path"] in operations.ROUTES:
        # Probes and scrapes skip Django's request cycle: cheap, and answered even when the console is busy.
        return await operations.ROUTES[scope["path"]](scope, receive, send)
    if kind == "http" and settings.TOLLWAY_DEMO_UPSTREAM and scope["path"].startswith(demo_upstream.PATH_PREFIX):
        return await demo_upstream.app(scope, receive, send)
    return await django_app(scope, receive, send)
