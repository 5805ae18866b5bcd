"""An OpenAI-compatible loopback upstream whose faults the test programs while it runs, per model id (the
model a deployment sends upstream): fail a share of calls with 500/502/503, answer 429 with Retry-After, wait
before answering, stall a stream after its first chunk, refuse a prompt longer than a context window; or
recover. Bodies, SSE chunks, headers and error bodies are OpenAI's own, as recorded from api.openai.com.

    upstream = FaultyUpstream()
    with LoopbackServer(upstream) as server:   # deployments point at f"{server.url}/v1"
        upstream.fail("dead-model", status=503)
        ...
        upstream.recover("dead-model")
        upstream.count("dead-model")            # requests it received, whatever it answered

Every method is safe to call from the test's thread while the server's thread answers. Every request is
logged (`calls`) with the model, the status answered, when (monotonic) and, when the test gives a `peer_of`,
which gateway process sent it.
"""

import asyncio
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

import orjson

from tests.upstreams.openai_server import (
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    REPLY,
    STREAM_COMPLETION_TOKENS,
    STREAM_PIECES,
)
from tests.upstreams.server import read_body, send_json

# A stalled stream waits for the caller to hang up; this long at most, so a stopped test never hangs on it.
MAX_STALL_S = 60.0
FAIL_STATUSES = (500, 502, 503)

# OpenAI's bodies for each failure, as api.openai.com sends them (the 502 comes from its CDN, in HTML).
SERVER_ERROR_BODIES: dict[int, tuple[bytes, bytes]] = {
    500: (
        b"application/json",
        orjson.dumps(
            {
                "error": {
                    "message": "The server had an error while processing your request. Sorry about that!",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            }
        ),
    ),
    502: (
        b"text/html",
        b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1>"
        b"</center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n",
    ),
    503: (
        b"application/json",
        orjson.dumps(
            {
                "error": {
                    "message": "The engine is currently overloaded, please try again later.",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            }
        ),
    ),
}


@dataclass(frozen=True, slots=True)
class Fault:
    """What one model does now. The default answers every call at once."""

    fail_percent: float = 0.0  # this share of calls (0-100) answers `fail_status`
    fail_status: int = 503
    retry_after_s: float | None = None  # every call answers 429 with this Retry-After
    delay_s: float = 0.0  # before answering anything
    stall_after_chunks: int | None = None  # a stream sends this many chunks, then nothing until the caller leaves
    context_window: int | None = None  # a prompt (+ max_tokens) over this many tokens answers 400
    times: int | None = None  # the fault applies to this many more calls, then the model recovers; None: all


@dataclass(frozen=True, slots=True)
class Call:
    model: str
    status: int
    at: float  # time.monotonic() when it arrived
    is_stream: bool
    peer: str  # peer_of(client address), or "" without one


def prompt_tokens_of(payload: dict) -> int:
    """A rough count, as a context check needs: about four characters a token over the messages' text."""
    characters = 0
    for message in payload.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            characters += len(content)
        elif isinstance(content, list):
            characters += sum(len(str(part.get("text", ""))) for part in content if isinstance(part, dict))
    return math.ceil(characters / 4)


def rate_limit_error(model: str, retry_after_s: float) -> dict:
    message = (
        f"Rate limit reached for {model} in organization org-tollwaytest on requests per min (RPM): Limit 3, "
        f"Used 3, Requested 1. Please try again in {retry_after_s:g}s. Visit "
        "https://platform.openai.com/account/rate-limits to learn more."
    )
    return {"error": {"message": message, "type": "requests", "param": None, "code": "rate_limit_exceeded"}}


def context_length_error(window: int, tokens: int) -> dict:
    message = (
        f"This model's maximum context length is {window} tokens. However, your messages resulted in {tokens} "
        "tokens. Please reduce the length of the messages."
    )
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }


class FaultyUpstream:
    def __init__(
        self,
        *,
        api_key: str = "sk-upstream-test",
        seed: int = 11,
        peer_of: Callable[[tuple[str, int]], str] | None = None,
    ) -> None:
        self.api_key = api_key
        self.peer_of = peer_of
        self._lock = threading.Lock()
        self._faults: dict[str, Fault] = {}
        self._random = random.Random(seed)  # which calls a partial failure hits: the same every run
        self._calls: list[Call] = []

    # --- programming it (from the test's thread) ------------------------------------------------------------

    def fault_of(self, model: str) -> Fault:
        with self._lock:
            return self._faults.get(model, Fault())

    def _change(self, model: str, times: int | None, **changes) -> None:
        with self._lock:
            self._faults[model] = replace(self._faults.get(model, Fault()), times=times, **changes)

    def fail(self, model: str, *, percent: float = 100.0, status: int = 503, times: int | None = None) -> None:
        if status not in FAIL_STATUSES or not 0 <= percent <= 100:
            raise ValueError(f"fail with one of {FAIL_STATUSES}, 0-100 percent")
        self._change(model, times, fail_percent=percent, fail_status=status)

    def rate_limit(self, model: str, *, retry_after_s: float = 2.0, times: int | None = None) -> None:
        self._change(model, times, retry_after_s=retry_after_s)

    def delay(self, model: str, seconds: float, *, times: int | None = None) -> None:
        self._change(model, times, delay_s=seconds)

    def stall_stream(self, model: str, *, after_chunks: int = 1, times: int | None = None) -> None:
        self._change(model, times, stall_after_chunks=after_chunks)

    def limit_context(self, model: str, tokens: int) -> None:
        self._change(model, None, context_window=tokens)

    def recover(self, model: str) -> None:
        """Answer every call at once again, whatever was programmed."""
        with self._lock:
            self._faults.pop(model, None)

    # --- what it saw ----------------------------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def count(self, model: str, *, since: float = 0.0) -> int:
        return sum(1 for call in self.calls if call.model == model and call.at >= since)

    def count_by_peer(self, model: str, *, since: float = 0.0, until: float = math.inf) -> Counter[str]:
        return Counter(call.peer for call in self.calls if call.model == model and since <= call.at < until)

    def statuses(self, model: str) -> Counter[int]:
        return Counter(call.status for call in self.calls if call.model == model)

    # --- answering (the server's thread) --------------------------------------------------------------------

    def _log(self, scope, model: str, status: int, *, is_stream: bool, at: float) -> None:
        peer = ""
        if self.peer_of is not None and scope.get("client"):
            peer = self.peer_of(tuple(scope["client"]))
        with self._lock:
            self._calls.append(Call(model=model, status=status, at=at, is_stream=is_stream, peer=peer))

    def _take_fault(self, model: str) -> Fault:
        """The fault this call meets; one of its `times` used up."""
        with self._lock:
            fault = self._faults.get(model, Fault())
            if fault.times is not None:
                if fault.times <= 1:
                    self._faults.pop(model)
                else:
                    self._faults[model] = replace(fault, times=fault.times - 1)
            return fault

    def _draw_failure(self, fault: Fault) -> bool:
        if fault.fail_percent <= 0:
            return False
        with self._lock:
            return self._random.random() * 100 < fault.fail_percent

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        at = time.monotonic()
        body = await read_body(receive)
        try:
            payload = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            payload = {}
        payload = payload if isinstance(payload, dict) else {}
        model, is_stream = str(payload.get("model", "")), bool(payload.get("stream"))
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if headers.get("authorization", "").removeprefix("Bearer ") != self.api_key:
            error = {
                "error": {
                    "message": "Incorrect API key provided.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_api_key",
                }
            }
            self._log(scope, model, 401, is_stream=is_stream, at=at)
            return await send_json(send, 401, error)
        if scope["path"] != "/v1/chat/completions":
            self._log(scope, model, 404, is_stream=is_stream, at=at)
            error = {"error": {"message": f"Unknown path {scope['path']}", "type": "invalid_request_error"}}
            return await send_json(send, 404, error)

        fault = self._take_fault(model)
        tokens = prompt_tokens_of(payload) + int(payload.get("max_tokens") or 0)
        if fault.context_window is not None and tokens > fault.context_window:
            status = 400
        elif fault.retry_after_s is not None:
            status = 429
        elif self._draw_failure(fault):
            status = fault.fail_status
        else:
            status = 200
        # Logged as it arrives, with what it will be answered: a caller that gives up during a delay was
        # still a call.
        self._log(scope, model, status, is_stream=is_stream, at=at)
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if status == 400:
            return await send_json(send, 400, context_length_error(fault.context_window, tokens))
        if status == 429:
            retry_after = f"{fault.retry_after_s:g}".encode()
            limit_headers = [
                (b"retry-after", retry_after),
                (b"x-ratelimit-limit-requests", b"3"),
                (b"x-ratelimit-remaining-requests", b"0"),
                (b"x-ratelimit-reset-requests", retry_after + b"s"),
            ]
            return await send_json(send, 429, rate_limit_error(model, fault.retry_after_s), headers=limit_headers)
        if status != 200:
            content_type, error_body = SERVER_ERROR_BODIES[status]
            return await _send_raw(send, status, content_type, error_body)
        if is_stream:
            return await self._stream(receive, send, model, payload, fault)
        return await send_json(send, 200, completion(model))

    async def _stream(self, receive, send, model: str, payload: dict, fault: Fault) -> None:
        events = stream_events(model, wants_usage=bool((payload.get("stream_options") or {}).get("include_usage")))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for index, event in enumerate(events):
            if fault.stall_after_chunks is not None and index == fault.stall_after_chunks:
                # Headers and the first chunks are out: hold the connection open and silent, as a hung model
                # server does, until the caller gives up and hangs up.
                await _wait_for_disconnect(receive, MAX_STALL_S)
                return
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


async def _wait_for_disconnect(receive, timeout_s: float) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while (await receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        pass


async def _send_raw(send, status: int, content_type: bytes, body: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def completion(model: str) -> dict:
    return {
        "id": "chatcmpl-faulty",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": REPLY, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
        "system_fingerprint": "fp_faulty",
    }


def stream_events(model: str, *, wants_usage: bool) -> list[bytes]:
    base = {"id": "chatcmpl-faulty", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}

    def event(extra: dict) -> bytes:
        return b"data: " + orjson.dumps({**base, "system_fingerprint": "fp_faulty", **extra}) + b"\n\n"

    events = [event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})]
    for piece in STREAM_PIECES:
        events.append(event({"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}))
    events.append(event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    if wants_usage:
        usage = {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": STREAM_COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + STREAM_COMPLETION_TOKENS,
        }
        events.append(event({"choices": [], "usage": usage}))
    events.append(b"data: [DONE]\n\n")
    return events
