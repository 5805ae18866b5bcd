"""A loopback server speaking Anthropic's Messages API wire format: bodies, SSE streams and error shapes.

Behaviour is chosen by the upstream model name the gateway sends, so one server covers every scenario:
  *fail-500*     -> 500 api_error                *overloaded* -> 529 overloaded_error
  *rate-limit*   -> 429 rate_limit_error with retry-after: 7
  *bad-request*  -> 400 invalid_request_error    *slow*       -> waits 3 s first
  *max-tokens*   -> stops with stop_reason max_tokens
  *tools*        -> calls the first tool offered (after a short text block)
  *stream-error* -> streams some text, then an `error` event (overloaded_error) instead of message_stop
  *truncated*    -> streams some text, then closes the connection without message_delta or message_stop
  anything else  -> a fixed reply with the fixed usage below
A wrong `x-api-key` gets 401 authentication_error; a missing `anthropic-version` gets 400, as from Anthropic.
"""

import asyncio

import orjson

from tests.upstreams.server import RequestLog, read_body, send_json, send_sse

# Every reply reports this usage, so tests can assert exact numbers. Anthropic counts cached input apart from
# input_tokens; an OpenAI-shaped prompt_tokens is INPUT + CACHE_READ + CACHE_CREATION.
INPUT_TOKENS, CACHE_READ_INPUT_TOKENS, CACHE_CREATION_INPUT_TOKENS = 11, 5, 3
OUTPUT_TOKENS = 14
STREAM_OUTPUT_TOKENS = 6
REPLY = "Hello from the Anthropic test upstream."
STREAM_PIECES = ["Hello", " from", " the", " stream", "."]
STREAM_ERROR_PIECES = ["Partial", " answer"]
TOOL_PREAMBLE = "Let me look that up."
TOOL_USE_ID = "toolu_01TestToolUse"
TOOL_INPUT = {"city": "Paris"}
TOOL_INPUT_FRAGMENTS = ['{"city"', ': "Par', 'is"}']
MESSAGE_ID = "msg_01TestMessage"
REQUEST_ID = "req_01TestRequest"


def anthropic_error(error_type: str, message: str) -> dict:
    return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": REQUEST_ID}


def sse_event(name: str, payload: dict) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class AnthropicUpstream:
    def __init__(self, *, api_key: str = "sk-ant-upstream-test", stream_delay_s: float = 0.0):
        self.api_key = api_key
        self.stream_delay_s = stream_delay_s
        self.log = RequestLog()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        entry = self.log.record(scope, body)
        headers = entry["headers"]

        async def error(status: int, error_type: str, message: str, extra=()):
            await send_json(
                send, status, anthropic_error(error_type, message), [(b"request-id", REQUEST_ID.encode()), *extra]
            )

        if headers.get("x-api-key") != self.api_key:
            return await error(401, "authentication_error", "invalid x-api-key")
        if not headers.get("anthropic-version"):
            return await error(400, "invalid_request_error", "anthropic-version: header is required")
        if scope["method"] != "POST" or scope["path"] != "/v1/messages":
            return await error(404, "not_found_error", f"Not found: {scope['path']}")
        payload = entry["json"]
        if not isinstance(payload, dict):
            return await error(400, "invalid_request_error", "There was an issue with the format of your request")
        problem = self.validate(payload)
        if problem:
            return await error(400, "invalid_request_error", problem)
        model = str(payload["model"])
        if "fail-500" in model:
            return await error(500, "api_error", "Internal server error")
        if "overloaded" in model:
            return await error(529, "overloaded_error", "Overloaded")
        if "rate-limit" in model:
            message = "This request would exceed the rate limit for your organization."
            return await error(429, "rate_limit_error", message, [(b"retry-after", b"7")])
        if "bad-request" in model:
            return await error(400, "invalid_request_error", "temperature: range: 0..1")
        if "slow" in model:
            await asyncio.sleep(3)
        if payload.get("stream"):
            return await send_sse(send, self.stream_events(model, payload), delay_s=self.stream_delay_s)
        return await send_json(send, 200, self.message(model, payload), [(b"request-id", REQUEST_ID.encode())])

    def validate(self, payload: dict) -> str | None:
        """The checks Anthropic makes that an adapter most easily gets wrong."""
        if not payload.get("model"):
            return "model: Field required"
        if not isinstance(payload.get("max_tokens"), int):
            return "max_tokens: Field required"
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            return "messages: Field required"
        previous_tool_use_ids: set[str] = set()
        for i, message in enumerate(messages):
            role = message.get("role")
            if role not in ("user", "assistant"):
                return f'messages.{i}.role: Input should be "user" or "assistant"'
            content = message.get("content")
            blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
            tool_use_ids = set()
            for block in blocks:
                if block.get("type") == "text" and not block.get("text"):
                    return f"messages.{i}: text content blocks must be non-empty"
                if block.get("type") == "tool_use":
                    tool_use_ids.add(block.get("id"))
                if block.get("type") == "tool_result" and block.get("tool_use_id") not in previous_tool_use_ids:
                    # Anthropic pairs each tool_result with a tool_use in the message just before it.
                    return f"messages.{i}: unexpected `tool_use_id` found in `tool_result` blocks"
            previous_tool_use_ids = tool_use_ids
        return None

    def usage(self, output_tokens: int) -> dict:
        return {
            "input_tokens": INPUT_TOKENS,
            "cache_creation_input_tokens": CACHE_CREATION_INPUT_TOKENS,
            "cache_read_input_tokens": CACHE_READ_INPUT_TOKENS,
            "output_tokens": output_tokens,
        }

    def wants_tool(self, model: str, payload: dict) -> bool:
        return "tools" in model and bool(payload.get("tools"))

    def message(self, model: str, payload: dict) -> dict:
        content: list[dict] = [{"type": "text", "text": REPLY}]
        stop_reason = "max_tokens" if "max-tokens" in model else "end_turn"
        if self.wants_tool(model, payload):
            name = payload["tools"][0]["name"]
            content = [
                {"type": "text", "text": TOOL_PREAMBLE},
                {"type": "tool_use", "id": TOOL_USE_ID, "name": name, "input": TOOL_INPUT},
            ]
            stop_reason = "tool_use"
        return {
            "id": MESSAGE_ID,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": self.usage(OUTPUT_TOKENS),
        }

    def stream_events(self, model: str, payload: dict) -> list[bytes]:
        start = {
            "id": MESSAGE_ID,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # Anthropic's message_start carries the input usage and a placeholder output count.
            "usage": self.usage(1),
        }
        events = [
            sse_event("message_start", {"type": "message_start", "message": start}),
            sse_event("ping", {"type": "ping"}),
        ]
        pieces = STREAM_ERROR_PIECES if "stream-error" in model else STREAM_PIECES
        if self.wants_tool(model, payload):
            pieces = [TOOL_PREAMBLE]
        events += self.block(0, {"type": "text", "text": ""}, [{"type": "text_delta", "text": p} for p in pieces])
        if "stream-error" in model:
            error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
            return [*events, sse_event("error", error)]
        if "truncated" in model:
            return events
        stop_reason = "max_tokens" if "max-tokens" in model else "end_turn"
        if self.wants_tool(model, payload):
            tool = {"type": "tool_use", "id": TOOL_USE_ID, "name": payload["tools"][0]["name"], "input": {}}
            # Anthropic opens every input_json stream with an empty fragment.
            fragments = ["", *TOOL_INPUT_FRAGMENTS]
            events += self.block(1, tool, [{"type": "input_json_delta", "partial_json": f} for f in fragments])
            stop_reason = "tool_use"
        delta = {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None}}
        events.append(sse_event("message_delta", {**delta, "usage": {"output_tokens": STREAM_OUTPUT_TOKENS}}))
        events.append(sse_event("message_stop", {"type": "message_stop"}))
        return events

    def block(self, index: int, content_block: dict, deltas: list[dict]) -> list[bytes]:
        events = [
            sse_event(
                "content_block_start", {"type": "content_block_start", "index": index, "content_block": content_block}
            )
        ]
        events += [
            sse_event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
            for d in deltas
        ]
        events.append(sse_event("content_block_stop", {"type": "content_block_stop", "index": index}))
        return events
