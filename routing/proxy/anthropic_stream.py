"""OpenAI chat.completion.chunk dicts -> the Anthropic Messages SSE events the `anthropic` SDK expects.

The inbound /v1/messages view feeds each chunk of a routed stream through AnthropicStreamEncoder and writes
the bytes it returns. Pure, no Django and no I/O.
"""

from typing import Any

import orjson

from core.values import TokenUsage
from routing.providers.openai_compatible import usage_from_openai
from routing.proxy.anthropic_messages import STOP_REASONS, anthropic_error_body, anthropic_usage, new_tool_use_id


class AnthropicStreamEncoder:
    """OpenAI chat.completion.chunk dicts in, Anthropic SSE events out, in the order the anthropic SDK expects:

    message_start, then per content block content_block_start / content_block_delta... / content_block_stop,
    then message_delta (stop_reason, usage) and message_stop. Blocks are numbered 0, 1, 2... across text and
    tool use; OpenAI numbers tool calls alone, so each tool call's index is mapped to its block.
    """

    def __init__(self, *, model: str, message_id: str, input_tokens: int = 0) -> None:
        self.model = model
        self.message_id = message_id
        self.input_tokens = input_tokens  # known up front only when the caller counted the prompt
        self.usage: TokenUsage | None = None
        self.stop_reason: str | None = None
        self.is_started = False
        self.is_finished = False
        self._next_block = 0
        self._open_block: int | None = None
        self._open_kind: str | None = None
        self._block_of_tool_call: dict[int, int] = {}

    def feed(self, chunk: dict[str, Any]) -> list[bytes]:
        if self.is_finished:
            return []
        events = self._start()
        if chunk.get("usage"):
            self.usage = usage_from_openai(chunk["usage"])
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue  # an Anthropic message has one reply
            delta = choice.get("delta") or {}
            text = delta.get("content") or delta.get("refusal")
            if text:
                events += self._text(text)
            for call in delta.get("tool_calls") or []:
                events += self._tool_call(call)
            if choice.get("finish_reason"):
                self.stop_reason = STOP_REASONS.get(choice["finish_reason"], "end_turn")
        return events

    def finish(self, usage: TokenUsage | None = None) -> list[bytes]:
        """Close the message. `usage` wins over what the chunks reported (the engine may have estimated it)."""
        if self.is_finished:
            return []
        events = self._start() + self._close_block()
        usage = usage or self.usage
        # message_delta's usage is cumulative and replaces message_start's, which went out before usage was known.
        delta_usage = anthropic_usage(usage) if usage else {"output_tokens": 0}
        delta = {"stop_reason": self.stop_reason or "end_turn", "stop_sequence": None}
        events.append(_event("message_delta", {"type": "message_delta", "delta": delta, "usage": delta_usage}))
        events.append(_event("message_stop", {"type": "message_stop"}))
        self.is_finished = True
        return events

    def error(self, error_type: str, message: str) -> list[bytes]:
        """An `error` event, for a failure after the 200 went out; the stream ends with it."""
        self.is_finished = True
        return [_event("error", anthropic_error_body(error_type, message))]

    def _start(self) -> list[bytes]:
        if self.is_started:
            return []
        self.is_started = True
        message = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0},
        }
        return [_event("message_start", {"type": "message_start", "message": message})]

    def _open(self, kind: str, content_block: dict[str, Any]) -> list[bytes]:
        events = self._close_block()
        self._open_block, self._open_kind = self._next_block, kind
        self._next_block += 1
        start = {"type": "content_block_start", "index": self._open_block, "content_block": content_block}
        return [*events, _event("content_block_start", start)]

    def _close_block(self) -> list[bytes]:
        if self._open_block is None:
            return []
        index, self._open_block, self._open_kind = self._open_block, None, None
        return [_event("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})

    def _text(self, text: str) -> list[bytes]:
        events = [] if self._open_kind == "text" else self._open("text", {"type": "text", "text": ""})
        return [*events, self._delta(self._open_block, {"type": "text_delta", "text": text})]

    def _tool_call(self, call: dict[str, Any]) -> list[bytes]:
        events: list[bytes] = []
        function = call.get("function") or {}
        tool_index = call.get("index", 0)
        if tool_index not in self._block_of_tool_call:
            block = {"type": "tool_use", "id": call.get("id") or new_tool_use_id(), "name": function.get("name") or ""}
            events = self._open("tool_use", {**block, "input": {}})
            self._block_of_tool_call[tool_index] = self._open_block
        if function.get("arguments"):
            # OpenAI upstreams finish one tool call before starting the next, so this is the open block; if one
            # ever interleaves, the delta still names its own block and the SDK accumulates it there.
            delta = {"type": "input_json_delta", "partial_json": function["arguments"]}
            events.append(self._delta(self._block_of_tool_call[tool_index], delta))
        return events


def _event(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
