"""Encoding chunks for the client in OpenAI's SSE format."""

from collections.abc import Callable
from typing import Any

import orjson

from core.errors import UpstreamError
from core.values import TokenUsage

DONE = b"data: [DONE]\n\n"


def event(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def openai_chunk_encoder(*, include_usage: bool) -> Callable[[dict[str, Any]], list[bytes]]:
    def encode(chunk: dict[str, Any]) -> list[bytes]:
        # We always ask upstreams for usage; the usage-only chunk goes out only if the client asked too.
        if not include_usage and not chunk.get("choices") and chunk.get("usage"):
            return []
        if not include_usage and "usage" in chunk:
            chunk = {k: v for k, v in chunk.items() if k != "usage"}
        return [event(chunk)]

    return encode


def openai_end(_usage: TokenUsage | None) -> list[bytes]:
    return [DONE]


def openai_error_event(error: UpstreamError) -> bytes:
    return event(
        {
            "error": {
                "message": error.message,
                "type": error.error_type,
                "param": error.param,
                "code": error.code or "upstream_stream_error",
            }
        }
    )
