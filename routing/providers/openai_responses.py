"""The OpenAI Responses API spoken natively: POST {base_url}/responses, for deployments flagged speaks_responses
(OpenAI, and OpenAI-compatible servers that implement it). Bodies pass through with `model` replaced; the
usage of a Response (input/output tokens) becomes the gateway's TokenUsage."""

from typing import Any

import httpx
import orjson

from core.errors import UpstreamError
from core.values import Target, TokenUsage
from routing.providers import http
from routing.providers.base import ChatResult, ChatStream
from routing.providers.openai_compatible import OpenAICompatibleAdapter, parse_openai_error
from routing.providers.sse import iter_sse

KINDS = frozenset({"openai", "openai-compatible"})  # Azure's and others' URL schemes differ: translated there
TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
_headers = OpenAICompatibleAdapter().headers


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


def _body(target: Target, body: dict[str, Any], *, stream: bool) -> bytes:
    payload = {**body, "model": target.model, "stream": stream}
    if not stream:
        payload.pop("stream")
    return orjson.dumps(payload)


async def create(client: httpx.AsyncClient, target: Target, body: dict[str, Any]) -> ChatResult:
    raw = await http.post_json(
        client,
        f"{target.base_url}/responses",
        target=target,
        headers=_headers(target),
        content=_body(target, body, stream=False),
        parse_error=parse_openai_error,
    )
    payload = http.load_json_object(raw, target)
    usage = usage_from_response(payload.get("usage"))
    return ChatResult(body=payload, usage=usage or TokenUsage(is_estimated=True))


async def open_stream(client: httpx.AsyncClient, target: Target, body: dict[str, Any]) -> ChatStream:
    """Yields the upstream's Responses events as dicts; `usage` is set from its terminal event."""
    response = await http.open_stream(
        client,
        f"{target.base_url}/responses",
        target=target,
        headers=_headers(target),
        content=_body(target, body, stream=True),
        parse_error=parse_openai_error,
    )
    stream = ChatStream(chunks=None)  # type: ignore[arg-type]

    async def events():
        try:
            async for _name, data in iter_sse(response.aiter_bytes()):
                if data == b"[DONE]":
                    break
                event = orjson.loads(data)
                if not isinstance(event, dict):
                    continue
                if event.get("type") == "error":
                    raise UpstreamError(str(event.get("message") or "upstream stream error"), code=event.get("code"))
                if event.get("type") in TERMINAL_EVENTS:
                    usage = usage_from_response((event.get("response") or {}).get("usage"))
                    if usage is not None:
                        stream.usage = usage
                yield event
        except httpx.HTTPError as exc:
            raise UpstreamError(
                f"deployment '{target.deployment}' broke off its stream ({type(exc).__name__})"
            ) from None
        finally:
            await response.aclose()

    stream.chunks = events()
    return stream
