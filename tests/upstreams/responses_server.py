"""A loopback server that speaks only the OpenAI Responses API (POST /v1/responses), as OpenAI does, streamed or
not; chat completions answer 404, so a call that reaches it was passed through, not translated.

It calls the first function tool offered unless the input already holds a function_call_output, then answers
in text; every answer reports the fixed usage below. Its ids are its own (resp_upstream…): the gateway answers
under its own.
"""

import orjson

from tests.upstreams.openai_server import openai_error
from tests.upstreams.server import RequestLog, read_body, send_json, send_sse

REPLY = "Hello from the Responses test upstream."
STREAM_PIECES = ["Hello", " from", " Responses", "."]
INPUT_TOKENS, CACHED_TOKENS, OUTPUT_TOKENS = 13, 2, 8
UPSTREAM_ID = "resp_upstream_1"


def usage() -> dict:
    return {
        "input_tokens": INPUT_TOKENS,
        "input_tokens_details": {"cached_tokens": CACHED_TOKENS},
        "output_tokens": OUTPUT_TOKENS,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
    }


class ResponsesUpstream:
    def __init__(self, *, api_key: str = "sk-upstream-test") -> None:
        self.api_key = api_key
        self.log = RequestLog()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        entry = self.log.record(scope, await read_body(receive))
        if entry["headers"].get("authorization") != f"Bearer {self.api_key}":
            return await send_json(send, 401, openai_error("Incorrect API key provided.", "invalid_request_error"))
        if scope["path"] != "/v1/responses":
            return await send_json(send, 404, openai_error(f"Unknown path {scope['path']}", "invalid_request_error"))
        payload = entry["json"] or {}
        output = self.output(payload)
        if payload.get("stream"):
            return await send_sse(send, self.events(payload, output))
        return await send_json(send, 200, self.response(payload, output, "completed"))

    def output(self, payload: dict) -> list[dict]:
        items = payload.get("input") if isinstance(payload.get("input"), list) else []
        answered = any(item.get("type") == "function_call_output" for item in items)
        tools = [t for t in payload.get("tools") or [] if t.get("type") == "function"]
        if tools and not answered:
            return [
                {
                    "id": "fc_upstream_1",
                    "type": "function_call",
                    "status": "completed",
                    "call_id": "call_upstream_1",
                    "name": tools[0]["name"],
                    "arguments": '{"city":"Paris"}',
                }
            ]
        text = REPLY if not payload.get("stream") else "".join(STREAM_PIECES)
        part = {"type": "output_text", "text": text, "annotations": []}
        return [
            {"id": "msg_upstream_1", "type": "message", "status": "completed", "role": "assistant", "content": [part]}
        ]

    def response(self, payload: dict, output: list[dict], status: str) -> dict:
        return {
            "id": UPSTREAM_ID,
            "object": "response",
            "created_at": 1,
            "status": status,
            "error": None,
            "incomplete_details": None,
            "instructions": payload.get("instructions"),
            "model": payload.get("model"),
            "output": output if status == "completed" else [],
            "parallel_tool_calls": True,
            "tool_choice": payload.get("tool_choice") or "auto",
            "tools": payload.get("tools") or [],
            "metadata": payload.get("metadata") or {},
            "store": payload.get("store", True),
            "usage": usage() if status == "completed" else None,
        }

    def events(self, payload: dict, output: list[dict]) -> list[bytes]:
        sequence = iter(range(1000))

        def event(kind: str, **fields) -> bytes:
            data = {"type": kind, "sequence_number": next(sequence), **fields}
            return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

        started = self.response(payload, output, "in_progress")
        events = [event("response.created", response=started), event("response.in_progress", response=started)]
        item = output[0]
        if item["type"] == "message":
            events.append(event("response.output_item.added", output_index=0, item={**item, "content": []}))
            where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
            events.append(event("response.content_part.added", **where, part={"type": "output_text", "text": ""}))
            for piece in STREAM_PIECES:
                events.append(event("response.output_text.delta", **where, delta=piece, logprobs=[]))
            events.append(event("response.output_text.done", **where, text="".join(STREAM_PIECES), logprobs=[]))
            events.append(event("response.content_part.done", **where, part=item["content"][0]))
        else:
            events.append(event("response.output_item.added", output_index=0, item={**item, "arguments": ""}))
            where = {"item_id": item["id"], "output_index": 0}
            events.append(event("response.function_call_arguments.delta", **where, delta=item["arguments"]))
            events.append(event("response.function_call_arguments.done", **where, arguments=item["arguments"]))
        events.append(event("response.output_item.done", output_index=0, item=item))
        events.append(event("response.completed", response=self.response(payload, output, "completed")))
        return events
