"""OpenAI chat.completion.chunk dicts -> the Responses API's SSE events, for `POST /v1/responses` with stream.

    response.created, response.in_progress
    per output item: response.output_item.added
        a message:       response.content_part.added, response.output_text.delta..., response.output_text.done,
                         response.content_part.done
        a function call: response.function_call_arguments.delta..., response.function_call_arguments.done
    response.output_item.done
    response.completed (response.incomplete when the output was cut at max_output_tokens)

Every event carries a `sequence_number` from 0. Pure, no Django and no I/O.
"""

import time
from typing import Any

import orjson

from core.values import TokenUsage
from routing.providers.openai_compatible import usage_from_openai
from routing.providers.openai_responses import TERMINAL_EVENTS
from routing.proxy import responses_api


class ResponsesStreamEncoder:
    def __init__(self, *, body: dict[str, Any], response_id: str, model: str = "") -> None:
        self.body = body
        self.response_id = response_id
        self.model = model
        self.created_at = int(time.time())
        self.usage: TokenUsage | None = None
        self.finish_reason: str | None = None
        self.output: list[dict[str, Any]] = []  # every item so far, in output order
        self.final_response: dict[str, Any] | None = None
        self.terminal_event: bytes | None = None  # response.completed / incomplete / failed, once sent
        self.is_started = False
        self.is_finished = False
        self._sequence = 0
        # A deployment that speaks the Responses API sends these events itself: relayed, renumbered, our id on them.
        self.is_native = False
        self.store = body.get("store") is not False
        self._message: dict[str, Any] | None = None  # the open message item
        self._text: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}  # chat tool call index -> its open function_call item
        self._index_of: dict[str, int] = {}  # item id -> output_index

    # --- the relay's callbacks ---

    def feed(self, chunk: dict[str, Any]) -> list[bytes]:
        if self.is_finished:
            return []
        if self.is_native:
            return self._relay(chunk)
        events = self._start()
        if chunk.get("usage"):
            self.usage = usage_from_openai(chunk["usage"])
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue  # a response has one answer
            delta = choice.get("delta") or {}
            text = delta.get("content") or delta.get("refusal")
            if text:
                events += self._text_delta(text)
            for call in delta.get("tool_calls") or []:
                events += self._tool_call_delta(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return events

    def finish(self, usage: TokenUsage | None = None) -> list[bytes]:
        """Close every open item and the response. `usage` wins over the chunks' (the relay may have counted)."""
        if self.is_finished:
            return []
        if self.is_native:  # the upstream ended before its response.completed
            return [self.error("The upstream ended its stream before the response was complete.")]
        events = self._start() + self._close_message() + self._close_calls()
        self.usage = usage or self.usage
        response = self._response("completed")
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        self.final_response = response
        self.terminal_event = self._event(kind, {"response": response})
        self.is_finished = True
        return [*events, self.terminal_event]

    def error(self, message: str, code: str = "server_error") -> bytes:
        """response.failed, for a failure after the 200 went out; the stream ends with it."""
        self.is_finished = True
        response = self._response("failed", error={"code": code, "message": message})
        self.final_response = response
        self.terminal_event = self._event("response.failed", {"response": response})
        return self.terminal_event

    # --- inside ---

    def _relay(self, event: dict[str, Any]) -> list[bytes]:
        kind = str(event.get("type") or "")
        event.pop("model", None)  # the relay names the model on every chunk; Responses events have none
        event.pop("sequence_number", None)
        if isinstance(event.get("response"), dict):
            event["response"] = {**event["response"], **self._ours()}
        encoded = self._event(kind, event)
        if kind in TERMINAL_EVENTS:
            self.final_response, self.terminal_event, self.is_finished = event["response"], encoded, True
        return [encoded]

    def _ours(self) -> dict[str, Any]:
        return {
            "id": self.response_id,
            "model": self.model,
            "previous_response_id": self.body.get("previous_response_id"),
            "store": self.store,
        }

    def _response(self, status: str, error: dict[str, Any] | None = None) -> dict[str, Any]:
        return responses_api.response_object(
            self.body,
            response_id=self.response_id,
            model=self.model,
            created_at=self.created_at,
            status=status,
            output=[dict(item) for item in self.output],
            usage=self.usage if status != "in_progress" else None,
            finish_reason=self.finish_reason,
            error=error,
        )

    def _event(self, kind: str, payload: dict[str, Any]) -> bytes:
        data = {"type": kind, "sequence_number": self._sequence, **payload}
        self._sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def _start(self) -> list[bytes]:
        if self.is_started:
            return []
        self.is_started = True
        response = self._response("in_progress")
        return [
            self._event("response.created", {"response": response}),
            self._event("response.in_progress", {"response": response}),
        ]

    def _add_item(self, item: dict[str, Any]) -> bytes:
        self._index_of[item["id"]] = len(self.output)
        self.output.append(item)
        return self._event("response.output_item.added", {"output_index": len(self.output) - 1, "item": dict(item)})

    def _text_delta(self, text: str) -> list[bytes]:
        events: list[bytes] = []
        if self._message is None:
            events += self._close_calls()
            self._message = {
                "id": responses_api.new_item_id("msg"),
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            self._text = []
            events.append(self._add_item(self._message))
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            events.append(self._event("response.content_part.added", {**self._where(self._message), "part": part}))
        self._text.append(text)
        delta = {**self._where(self._message), "delta": text, "logprobs": []}
        return [*events, self._event("response.output_text.delta", delta)]

    def _where(self, item: dict[str, Any], content: bool = True) -> dict[str, Any]:
        where = {"item_id": item["id"], "output_index": self._index_of[item["id"]]}
        if content:
            where["content_index"] = 0
        return where

    def _close_message(self) -> list[bytes]:
        if self._message is None:
            return []
        message, self._message = self._message, None
        text = "".join(self._text)
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        where = self._where(message)
        is_cut = responses_api.incomplete_reason(self.finish_reason) is not None
        message.update(status="incomplete" if is_cut else "completed", content=[part])
        return [
            self._event("response.output_text.done", {**where, "text": text, "logprobs": []}),
            self._event("response.content_part.done", {**where, "part": part}),
            self._event("response.output_item.done", {"output_index": where["output_index"], "item": dict(message)}),
        ]

    def _tool_call_delta(self, call: dict[str, Any]) -> list[bytes]:
        events: list[bytes] = []
        function = call.get("function") or {}
        index = call.get("index", 0)
        item = self._calls.get(index)
        if item is None:
            events += self._close_message()
            item = responses_api.function_call_item(
                item_id=responses_api.new_item_id("fc"),
                call_id=call.get("id") or responses_api.new_item_id("call"),
                name=function.get("name") or "",
                arguments="",
                status="in_progress",
            )
            self._calls[index] = item
            events.append(self._add_item(item))
        if function.get("arguments"):
            item["arguments"] += function["arguments"]
            delta = {**self._where(item, content=False), "delta": function["arguments"]}
            events.append(self._event("response.function_call_arguments.delta", delta))
        return events

    def _close_calls(self) -> list[bytes]:
        events: list[bytes] = []
        for item in self._calls.values():
            item["status"] = "completed"
            where = self._where(item, content=False)
            done = {**where, "name": item["name"], "arguments": item["arguments"]}
            events.append(self._event("response.function_call_arguments.done", done))
            events.append(
                self._event("response.output_item.done", {"output_index": where["output_index"], "item": dict(item)})
            )
        self._calls = {}
        return events
