"""Anthropic's Messages API behind the OpenAI Chat Completions contract.

POST {base_url}/messages with `x-api-key` and `anthropic-version`, where base_url is like
https://api.anthropic.com/v1. Requests are translated in anthropic_request.py; replies, streams and errors here.
Anthropic reports cached input apart from `input_tokens`; OpenAI counts it inside `prompt_tokens`, so we add it back.
"""

import time
from typing import Any

import httpx
import orjson

from core.errors import UpstreamError
from core.values import Target, TokenUsage
from routing.providers import http
from routing.providers.anthropic_request import to_messages_request
from routing.providers.base import ChatResult, ChatStream, EmbeddingsResult
from routing.providers.sse import iter_sse

DEFAULT_BASE_URL = "https://api.anthropic.com/v1"
ANTHROPIC_VERSION = "2023-06-01"

# Anthropic's error type -> the OpenAI-style type the gateway reports. The Anthropic type is kept as `code`.
ERROR_TYPES = {
    "invalid_request_error": "invalid_request_error",
    "request_too_large": "invalid_request_error",
    "authentication_error": "authentication_error",
    "permission_error": "permission_error",
    "not_found_error": "not_found_error",
    "billing_error": "insufficient_quota",
    "rate_limit_error": "rate_limit_error",
    "api_error": "server_error",
    "timeout_error": "server_error",
    "overloaded_error": "server_error",
}

# For errors that arrive inside a 200 stream, where no HTTP status tells us.
ERROR_STATUSES = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def parse_anthropic_error(status: int, body: bytes, headers: httpx.Headers) -> UpstreamError:
    """`{"type": "error", "error": {"type": "...", "message": "..."}}` -> UpstreamError (http.py adds retry info)."""
    message, anthropic_type = f"upstream answered HTTP {status}", None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or message)
        anthropic_type = error.get("type")
    return UpstreamError(
        message, status=status, error_type=ERROR_TYPES.get(anthropic_type, "upstream_error"), code=anthropic_type
    )


def usage_from_anthropic(usage: dict[str, Any] | None) -> TokenUsage | None:
    if not usage:
        return None
    cache_read = int(usage.get("cache_read_input_tokens") or 0)
    cache_creation = int(usage.get("cache_creation_input_tokens") or 0)
    return TokenUsage(
        prompt_tokens=int(usage.get("input_tokens") or 0) + cache_read + cache_creation,
        completion_tokens=int(usage.get("output_tokens") or 0),
        cached_tokens=cache_read,
    )


def openai_usage(usage: TokenUsage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


def to_chat_completion(message: dict[str, Any], target: Target) -> tuple[dict[str, Any], TokenUsage]:
    """An Anthropic message object -> an OpenAI chat.completion and its usage."""
    texts, tool_calls = [], []
    for block in message.get("content") or []:
        if block.get("type") == "text":
            texts.append(block.get("text") or "")
        elif block.get("type") == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            tool_calls.append(
                {
                    "id": block.get("id") or "",
                    "type": "function",
                    "function": {"name": block.get("name") or "", "arguments": arguments},
                }
            )
        # thinking and server-tool blocks have no place in a chat.completion message.
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not tool_calls else None}
    if tool_calls:
        reply["tool_calls"] = tool_calls
    usage = usage_from_anthropic(message.get("usage")) or TokenUsage(is_estimated=True)
    body = {
        "id": message.get("id") or "",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model") or target.model,
        "choices": [
            {
                "index": 0,
                "message": reply,
                "logprobs": None,
                "finish_reason": FINISH_REASONS.get(message.get("stop_reason"), "stop"),
            }
        ],
        "usage": openai_usage(usage),
    }
    return body, usage


class AnthropicAdapter:
    kind = "anthropic"

    def messages_url(self, target: Target) -> str:
        return f"{target.base_url}/messages"

    def headers(self, target: Target) -> dict[str, str]:
        headers = {"content-type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        if target.api_key:
            headers["x-api-key"] = target.api_key
        headers.update(target.extra_headers)  # e.g. anthropic-beta
        return headers

    async def chat(self, client: httpx.AsyncClient, target: Target, body: dict[str, Any]) -> ChatResult:
        request = to_messages_request(target, body, stream=False)
        raw = await http.post_json(
            client,
            self.messages_url(target),
            target=target,
            headers=self.headers(target),
            content=orjson.dumps(request),
            parse_error=parse_anthropic_error,
        )
        message = http.load_json_object(raw, target)
        completion, usage = to_chat_completion(message, target)
        return ChatResult(body=completion, usage=usage)

    async def open_chat_stream(self, client: httpx.AsyncClient, target: Target, body: dict[str, Any]) -> ChatStream:
        request = to_messages_request(target, body, stream=True)
        response = await http.open_stream(
            client,
            self.messages_url(target),
            target=target,
            headers=self.headers(target),
            content=orjson.dumps(request),
            parse_error=parse_anthropic_error,
        )
        stream = ChatStream(chunks=None)  # type: ignore[arg-type]
        translator = StreamTranslator(target)

        async def chunks():
            try:
                async for event, data in iter_sse(response.aiter_bytes()):
                    try:
                        payload = orjson.loads(data)
                    except orjson.JSONDecodeError:
                        payload = None
                    if not isinstance(payload, dict):
                        raise UpstreamError(f"deployment '{target.deployment}' sent an event that is not a JSON object")
                    for chunk in translator.translate(payload.get("type") or event, payload):
                        yield chunk
                    if translator.is_done:
                        stream.usage = translator.usage
                        yield translator.usage_chunk()
                        return
            except httpx.HTTPError as exc:
                raise UpstreamError(
                    f"deployment '{target.deployment}' broke off its stream ({type(exc).__name__})"
                ) from None
            finally:
                await response.aclose()
            raise UpstreamError(f"deployment '{target.deployment}' ended its stream before message_stop")

        stream.chunks = chunks()
        return stream

    async def embeddings(self, client: httpx.AsyncClient, target: Target, body: dict[str, Any]) -> EmbeddingsResult:
        raise UpstreamError(
            f"deployment '{target.deployment}' is an Anthropic model, and Anthropic has no embeddings API",
            status=400,
            error_type="invalid_request_error",
            is_retryable=False,
        )


class StreamTranslator:
    """Anthropic stream events -> OpenAI chat.completion.chunk dicts, one event at a time.

    Anthropic numbers content blocks across text and tool use; OpenAI numbers tool calls alone, so block indexes
    are mapped to tool-call indexes as tool_use blocks start.
    """

    def __init__(self, target: Target) -> None:
        self.target = target
        self.id, self.model, self.created = "", target.model, int(time.time())
        self.tool_index_of_block: dict[int, int] = {}
        self.usage_counts: dict[str, Any] = {}
        self.is_done = False

    def translate(self, kind: str, event: dict[str, Any]) -> list[dict[str, Any]]:
        if kind == "message_start":
            message = event.get("message") or {}
            self.id, self.model = message.get("id") or self.id, message.get("model") or self.model
            self.usage_counts.update(message.get("usage") or {})
            return [self.chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block, index = event.get("content_block") or {}, event.get("index", 0)
            if block.get("type") == "tool_use":
                tool_index = self.tool_index_of_block[index] = len(self.tool_index_of_block)
                function = {"name": block.get("name"), "arguments": ""}
                call = {"index": tool_index, "id": block.get("id"), "type": "function", "function": function}
                return [self.chunk({"tool_calls": [call]})]
            if block.get("type") == "text" and block.get("text"):
                return [self.chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            delta, index = event.get("delta") or {}, event.get("index", 0)
            if delta.get("type") == "text_delta" and delta.get("text"):
                return [self.chunk({"content": delta["text"]})]
            if (
                delta.get("type") == "input_json_delta"
                and delta.get("partial_json")
                and index in self.tool_index_of_block
            ):
                call = {"index": self.tool_index_of_block[index], "function": {"arguments": delta["partial_json"]}}
                return [self.chunk({"tool_calls": [call]})]
            return []  # thinking, signature and citation deltas have no OpenAI counterpart
        if kind == "message_delta":
            # Usage here is cumulative: it replaces, never adds to, what message_start said.
            self.usage_counts.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            stop_reason = (event.get("delta") or {}).get("stop_reason")
            if stop_reason:
                return [self.chunk({}, finish_reason=FINISH_REASONS.get(stop_reason, "stop"))]
            return []
        if kind == "message_stop":
            self.is_done = True
            return []
        if kind == "error":
            error = event.get("error") or {}
            anthropic_type = error.get("type")
            raise UpstreamError(
                str(error.get("message") or f"deployment '{self.target.deployment}' failed mid-stream"),
                status=ERROR_STATUSES.get(anthropic_type, 500),
                error_type=ERROR_TYPES.get(anthropic_type, "upstream_error"),
                code=anthropic_type,
                # Tokens were already produced and billed upstream: never replay the call elsewhere.
                is_retryable=False,
            )
        return []  # ping, content_block_stop, and event types added after this was written

    @property
    def usage(self) -> TokenUsage:
        return usage_from_anthropic(self.usage_counts) or TokenUsage(is_estimated=True)

    def chunk(self, delta: dict[str, Any], *, finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }

    def usage_chunk(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": openai_usage(self.usage),
        }
