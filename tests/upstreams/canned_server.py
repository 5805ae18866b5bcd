"""An OpenAI-format loopback upstream that answers each model id with the reply the test set for it (content,
finish_reason, logprobs), streamed or not, and a cascade verifier that answers as its URL's path says.

    upstream = CannedUpstream()
    with LoopbackServer(upstream) as server:        # deployments point at f"{server.url}/v1"
        upstream.answer("cheap", "B", finish_reason="length", logprobs=[-0.1])

    verifier = Verifier()                            # POST /pass, /fail, /score/0.7, /garbage, /slow, /500
"""

import asyncio
import threading
import time
from dataclasses import dataclass

import orjson

from tests.upstreams.server import RequestLog, read_body, send_json, send_sse

PROMPT_TOKENS, COMPLETION_TOKENS = 10, 20


@dataclass(frozen=True, slots=True)
class Canned:
    content: str = "Hello."
    finish_reason: str = "stop"
    logprobs: tuple[float, ...] | None = None  # one per piece of the stream (and of the reply)


class CannedUpstream:
    def __init__(self, *, stream_delay_s: float = 0.0) -> None:
        self.stream_delay_s = stream_delay_s
        self.log = RequestLog()
        self._answers: dict[str, Canned] = {}
        self._lock = threading.Lock()

    def answer(self, model: str, content: str, *, finish_reason: str = "stop", logprobs=None) -> None:
        with self._lock:
            self._answers[model] = Canned(content, finish_reason, None if logprobs is None else tuple(logprobs))

    def models_called(self) -> list[str]:
        return [(entry["json"] or {}).get("model") for entry in self.log.requests]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        entry = self.log.record(scope, await read_body(receive))
        payload = entry["json"] or {}
        model = str(payload.get("model", ""))
        with self._lock:
            canned = self._answers.get(model, Canned())
        if payload.get("stream"):
            return await self._stream(send, model, canned, payload)
        logprobs = None
        if canned.logprobs is not None:
            logprobs = {
                "content": [{"token": "t", "logprob": v, "bytes": None, "top_logprobs": []} for v in canned.logprobs]
            }
        body = {
            "id": "chatcmpl-canned",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": canned.content, "refusal": None},
                    "logprobs": logprobs,
                    "finish_reason": canned.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": COMPLETION_TOKENS,
                "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
            },
        }
        await send_json(send, 200, body)

    async def _stream(self, send, model: str, canned: Canned, payload: dict) -> None:
        base = {"id": "chatcmpl-canned", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}

        def event(extra: dict) -> bytes:
            return b"data: " + orjson.dumps({**base, **extra}) + b"\n\n"

        # The content in pieces of about four characters, as a model's tokens come.
        pieces = [canned.content[i : i + 4] for i in range(0, len(canned.content), 4)] or [""]
        events = [
            event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
        ]
        for index, piece in enumerate(pieces):
            choice: dict = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
            if canned.logprobs is not None:
                values = canned.logprobs[index : index + 1] if index < len(pieces) - 1 else canned.logprobs[index:]
                choice["logprobs"] = {"content": [{"token": piece, "logprob": v} for v in values]}
            events.append(event({"choices": [choice]}))
        events.append(event({"choices": [{"index": 0, "delta": {}, "finish_reason": canned.finish_reason}]}))
        if (payload.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS, "total_tokens": 30}
            events.append(event({"choices": [], "usage": usage}))
        events.append(b"data: [DONE]\n\n")
        await send_sse(send, events, delay_s=self.stream_delay_s)


class Verifier:
    """A cascade webhook verifier: /pass, /fail, /score/<x>, /garbage (not JSON), /slow (5 s), /500."""

    def __init__(self) -> None:
        self.log = RequestLog()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        self.log.record(scope, await read_body(receive))
        path = scope["path"]
        if path == "/pass":
            return await send_json(send, 200, {"pass": True})
        if path == "/fail":
            return await send_json(send, 200, {"pass": False})
        if path.startswith("/score/"):
            return await send_json(send, 200, {"score": float(path.rsplit("/", 1)[1])})
        if path == "/slow":
            await asyncio.sleep(5)
            return await send_json(send, 200, {"pass": True})
        if path == "/garbage":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
            return await send({"type": "http.response.body", "body": b"<html>ok!</html>"})
        await send_json(send, 500, {"error": "verifier broke"})
