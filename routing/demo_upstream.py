"""The built-in demo provider: a small OpenAI-compatible responder served by the gateway itself, so a fresh
install answers with no internet and no provider keys. Mounted at /demo-upstream/v1 when TOLLWAY_DEMO_UPSTREAM
is on (`make run` turns it on for the embedded default). It is a real upstream over HTTP, not a shortcut."""

import hashlib
import time

import orjson

from billing.token_estimate import count_prompt, count_text

PATH_PREFIX = "/demo-upstream/v1/"


def _reply_to(payload: dict) -> str:
    last = ""
    for message in reversed(payload.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            last = (
                content
                if isinstance(content, str)
                else " ".join(part.get("text", "") for part in content or [] if isinstance(part, dict))
            )
            break
    return f"Hello from Tollway's demo provider! You said: {last[:200]}"


async def _read(receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def _json(send, status: int, payload: dict) -> None:
    body = orjson.dumps(payload)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send) -> None:
    operation = scope["path"][len(PATH_PREFIX) :]
    try:
        payload = orjson.loads(await _read(receive) or b"{}")
    except orjson.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict):
        error = {"message": "body is not a JSON object", "type": "invalid_request_error", "param": None, "code": None}
        return await _json(send, 400, {"error": error})
    model = str(payload.get("model") or "demo")
    if operation == "embeddings":
        inputs = payload.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        data = []
        for index, item in enumerate(items):
            digest = hashlib.sha256(str(item).encode()).digest()
            data.append({"object": "embedding", "index": index, "embedding": [b / 255 for b in digest[:16]]})
        tokens = count_prompt(payload)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return await _json(send, 200, {"object": "list", "data": data, "model": model, "usage": usage})
    if operation != "chat/completions":
        error = {
            "message": f"unknown path {scope['path']}",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
        return await _json(send, 404, {"error": error})
    reply = _reply_to(payload)
    prompt_tokens, completion_tokens = count_prompt(payload), count_text(reply)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    base = {"id": f"chatcmpl-demo{time.time_ns()}", "created": int(time.time()), "model": model}
    if not payload.get("stream"):
        choice = {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
        return await _json(send, 200, {**base, "object": "chat.completion", "choices": [choice], "usage": usage})
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})

    async def event(extra: dict) -> None:
        chunk = {**base, "object": "chat.completion.chunk", **extra}
        await send({"type": "http.response.body", "body": b"data: " + orjson.dumps(chunk) + b"\n\n", "more_body": True})

    await event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
    for word in reply.split(" "):
        await event({"choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}]})
    await event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if (payload.get("stream_options") or {}).get("include_usage"):
        await event({"choices": [], "usage": usage})
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
