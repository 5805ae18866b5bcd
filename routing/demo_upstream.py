"""The built-in demo provider: a small OpenAI-compatible responder served by the gateway itself, so a fresh
install answers with no internet and no provider keys. Mounted at /demo-upstream/v1 when TOLLWAY_DEMO_UPSTREAM
is on (`make run` turns it on for the embedded default). It is a real upstream over HTTP, not a shortcut.

It answers the way a model would, deterministically (the same request gets the same answer):
- plain chat: a greeting that quotes the last user message;
- tools: with `tools` offered it calls one, with arguments valid against the tool's JSON schema
  (`tool_choice` "auto" or absent: the tool whose name and description share most words with the last user
  message; "required": the same, even after a tool result; a named function: that one; "none": no call);
  after a `tool` message it gives a final text answer built from the tool's result;
- JSON mode: `response_format` `json_object` gets a JSON object, `json_schema` an object valid against
  the schema (routing/demo_examples.py);
- streams of all of these in OpenAI's chunk format (tool-call deltas carry index, id and name first, then
  argument fragments; `finish_reason` "tool_calls"; a usage chunk with `stream_options.include_usage`).
"""

import hashlib
import re
import time
from dataclasses import dataclass

import orjson

from billing.token_estimate import count_prompt, count_text
from routing.demo_examples import example_of, place_in

PATH_PREFIX = "/demo-upstream/v1/"
GREETING = "Hello from Tollway's demo provider!"
_WORD = re.compile(r"[a-z0-9]+")
_FRAGMENT = re.compile(r"\S+\s*|\s+")


class DemoRequestError(ValueError):
    """What OpenAI would answer with a 400 invalid_request_error naming `param`."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Answer:
    content: str | None
    tool_call: dict | None = None  # {"id", "type": "function", "function": {"name", "arguments"}}

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_call else "stop"

    @property
    def completion_text(self) -> str:
        if self.tool_call:
            return self.tool_call["function"]["name"] + self.tool_call["function"]["arguments"]
        return self.content or ""


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    return " ".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


def _last_user_text(messages: list) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def _digest(payload: dict) -> str:
    # `stream` and its options change the framing, not the answer.
    asked = {key: value for key, value in payload.items() if key not in ("stream", "stream_options")}
    return hashlib.sha256(orjson.dumps(asked, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _offered_functions(payload: dict) -> list[dict]:
    tools = payload.get("tools") or []
    if not isinstance(tools, list):
        raise DemoRequestError("tools must be a list", "tools")
    functions = []
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise DemoRequestError(f"tools[{index}] must be a function with a name", f"tools[{index}]")
        functions.append(function)
    return functions


def _best_match(functions: list[dict], text: str) -> dict:
    """The function sharing most words with the user's message; the first offered on a tie."""
    said = set(_WORD.findall(text.lower()))

    def shared(function: dict) -> int:
        described = f"{function['name'].replace('_', ' ')} {function.get('description') or ''}".lower()
        return len(said & set(_WORD.findall(described)))

    return max(functions, key=shared)  # max keeps the first of equals


def _function_to_call(payload: dict, messages: list, text: str) -> dict | None:
    functions = _offered_functions(payload)
    choice = payload.get("tool_choice")
    if not functions:
        if choice not in (None, "none", "auto"):
            raise DemoRequestError("tool_choice is only allowed when tools are specified", "tool_choice")
        return None
    if choice == "none":
        return None
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        for function in functions:
            if function["name"] == wanted:
                return function
        raise DemoRequestError(f"tool_choice names {wanted!r}, which is not in tools", "tool_choice")
    if choice not in (None, "auto", "required"):
        raise DemoRequestError("tool_choice must be none, auto, required or a named function", "tool_choice")
    is_after_tool_result = bool(messages) and isinstance(messages[-1], dict) and messages[-1].get("role") == "tool"
    if is_after_tool_result and choice != "required":
        return None  # the model has what it asked for: time for the final answer
    return _best_match(functions, text)


def _final_answer(messages: list) -> str:
    """A reply that uses the tool results given since the last assistant turn."""
    names = {}
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "assistant":
            for call in message.get("tool_calls") or []:
                if isinstance(call, dict):
                    names[call.get("id")] = (call.get("function") or {}).get("name", "the tool")
    results = []
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "tool":
            break
        name = names.get(message.get("tool_call_id"), "the tool")
        results.append(f"{name} returned {_text_of(message.get('content'))[:300]}")
    said = _last_user_text(messages)
    about = f" about {place_in(said)}" if place_in(said) else ""
    return f"Here is what I found{about}: " + "; ".join(reversed(results)) + "."


def _json_content(payload: dict, text: str, reply: str) -> str | None:
    response_format = payload.get("response_format")
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return orjson.dumps({"message": reply, "you_said": text[:200]}).decode()
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise DemoRequestError("response_format.json_schema.schema must be an object", "response_format")
        return orjson.dumps(example_of(schema, hint=text)).decode()
    raise DemoRequestError("response_format.type must be text, json_object or json_schema", "response_format")


def answer(payload: dict) -> Answer:
    messages = [m for m in payload.get("messages") or [] if isinstance(m, dict)]
    text = _last_user_text(messages)
    function = _function_to_call(payload, messages, text)
    if function is not None:
        arguments = orjson.dumps(example_of(function.get("parameters") or {"type": "object"}, hint=text)).decode()
        call_id = "call_" + _digest(payload)[:24]
        return Answer(
            None, {"id": call_id, "type": "function", "function": {"name": function["name"], "arguments": arguments}}
        )
    is_after_tool_result = bool(messages) and messages[-1].get("role") == "tool"
    reply = _final_answer(messages) if is_after_tool_result else f"{GREETING} You said: {text[:200]}"
    json_content = _json_content(payload, text, reply)
    return Answer(json_content if json_content is not None else reply)


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


def _error(message: str, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}


async def app(scope, receive, send) -> None:
    operation = scope["path"][len(PATH_PREFIX) :]
    try:
        payload = orjson.loads(await _read(receive) or b"{}")
    except orjson.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict):
        return await _json(send, 400, _error("body is not a JSON object"))
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
        return await _json(send, 404, _error(f"unknown path {scope['path']}"))
    try:
        reply = answer(payload)
    except DemoRequestError as exc:
        return await _json(send, 400, _error(str(exc), exc.param))
    prompt_tokens, completion_tokens = count_prompt(payload), count_text(reply.completion_text)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    base = {
        "id": f"chatcmpl-demo{time.time_ns()}",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_tollway_demo",
    }
    if not payload.get("stream"):
        message = {"role": "assistant", "content": reply.content, "refusal": None}
        if reply.tool_call:
            message["tool_calls"] = [reply.tool_call]
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}
        return await _json(send, 200, {**base, "object": "chat.completion", "choices": [choice], "usage": usage})
    await _stream(send, base, reply, usage, payload)


async def _stream(send, base: dict, reply: Answer, usage: dict, payload: dict) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
    # With include_usage, OpenAI sends "usage": null on every chunk before the last.
    extra = {"usage": None} if include_usage else {}

    async def event(choices: list, **fields) -> None:
        chunk = {**base, "object": "chat.completion.chunk", "choices": choices, **extra, **fields}
        await send({"type": "http.response.body", "body": b"data: " + orjson.dumps(chunk) + b"\n\n", "more_body": True})

    def delta(content: dict, finish_reason: str | None = None) -> list:
        return [{"index": 0, "delta": content, "logprobs": None, "finish_reason": finish_reason}]

    if reply.tool_call:
        call, arguments = reply.tool_call, reply.tool_call["function"]["arguments"]
        opening = {
            "index": 0,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        await event(delta({"role": "assistant", "content": None, "tool_calls": [opening], "refusal": None}))
        # Fragments of a dozen characters, the way a model's tokens arrive: the client must join them.
        for start in range(0, len(arguments), 12):
            fragment = {"index": 0, "function": {"arguments": arguments[start : start + 12]}}
            await event(delta({"tool_calls": [fragment]}))
    else:
        await event(delta({"role": "assistant", "content": "", "refusal": None}))
        for piece in _FRAGMENT.findall(reply.content or ""):
            await event(delta({"content": piece}))
    await event(delta({}, reply.finish_reason))
    if include_usage:
        await event([], usage=usage)
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
