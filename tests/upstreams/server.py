"""Run a raw ASGI app on a free loopback port in a background thread, for tests that need a real upstream."""

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import uvicorn

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LoopbackServer:
    """`with LoopbackServer(app) as server: server.url` — started and stopped around the block."""

    def __init__(self, app, *, port: int | None = None, lifespan: str = "off") -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # log_config=None: leave the test process's logging (and pytest's capture) as it is.
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan=lifespan, log_config=None
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> "LoopbackServer":
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("loopback test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


async def read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def send_json(send: Send, status: int, payload: Any, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = orjson.dumps(payload)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_sse(send: Send, events: list[bytes], *, delay_s: float = 0.0, content_type=b"text/event-stream") -> None:
    """Send each pre-encoded SSE event as its own body chunk, optionally spaced out in time."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
    for event in events:
        await send({"type": "http.response.body", "body": event, "more_body": True})
        if delay_s:
            await asyncio.sleep(delay_s)
    await send({"type": "http.response.body", "body": b""})


class RequestLog:
    """What a test server received, for assertions: path, query, headers and parsed JSON body."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def record(self, scope: Scope, body: bytes) -> dict[str, Any]:
        try:
            payload = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            payload = None
        entry = {
            "path": scope["path"],
            "query": scope.get("query_string", b"").decode(),
            "headers": {k.decode().lower(): v.decode() for k, v in scope["headers"]},
            "json": payload,
        }
        self.requests.append(entry)
        return entry

    @property
    def last(self) -> dict[str, Any]:
        return self.requests[-1]
