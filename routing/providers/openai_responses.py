"""The OpenAI Responses API spoken natively: POST {base_url}/responses, for deployments flagged speaks_responses
(OpenAI, and OpenAI-compatible servers that implement it). Bodies pass through with `model` replaced; the
usage of a Response (input/output tokens) becomes the gateway's TokenUsage."""

from typing import Any

import httpx
import orjson

from core.errors import UpstreamError
from core.values import Target, TokenUsage
from routing.providers.base import ChatResult, ChatStream
from routing.providers.openai_compatible import OpenAICompatibleAdapter

KINDS = frozenset({"openai", "openai-compatible"})  # Azure's and others' URL schemes differ: translated there
TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
# OpenAI's and the compatible servers' headers and posts are the same; only the path and usage differ.
_openai = OpenAICompatibleAdapter()


def serves(target: Target) -> bool:
    return target.speaks_responses and target.kind in KINDS


def usage_from_response(usage: Any) -> TokenUsage | None:
    if not isinstance(usage, dict):
        return None
    details = usage.get("input_tokens_details") or {}
    return TokenUsage(
        prompt_tokens=int(usage.get("input_tokens") or 0),
        completion_tokens=int(usage.get("output_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0,
    )


def _url(target: Target) -> str:
    return f"{target.base_url}/responses"


def _body(target: Target, body: dict[str, Any], *, stream: bool) -> bytes:
    payload = {**body, "model": target.model, "stream": stream}
    if not stream:
        payload.pop("stream")
    return orjson.dumps(payload)


def _usage_of_event(event: dict[str, Any]) -> TokenUsage | None:
    """A Responses event's usage: only its terminal event has one. An error event ends the stream."""
    if event.get("type") == "error":
        raise UpstreamError(str(event.get("message") or "upstream stream error"), code=event.get("code"))
    if event.get("type") in TERMINAL_EVENTS:
        return usage_from_response((event.get("response") or {}).get("usage"))
    return None


async def create(client: httpx.AsyncClient, target: Target, body: dict[str, Any]) -> ChatResult:
    payload = await _openai.post(client, target, _url(target), _body(target, body, stream=False))
    usage = usage_from_response(payload.get("usage"))
    return ChatResult(body=payload, usage=usage or TokenUsage(is_estimated=True))


async def open_stream(client: httpx.AsyncClient, target: Target, body: dict[str, Any]) -> ChatStream:
    """Yields the upstream's Responses events as dicts; `usage` is set from its terminal event."""
    content = _body(target, body, stream=True)
    return await _openai.open_events(client, target, _url(target), content, usage_of=_usage_of_event)
