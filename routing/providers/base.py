"""The contract every provider adapter implements, and the one error they raise.

The gateway's canonical format is OpenAI's Chat Completions: adapters take an OpenAI-style request body
and give back OpenAI-style responses and stream chunks, translating to and from their provider's wire format.
Adapters only translate and call; retries, prices and usage records belong to the engine and billing.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from core.values import Target, TokenUsage


@dataclass(slots=True)
class ChatResult:
    body: dict[str, Any]  # an OpenAI chat.completion object
    usage: TokenUsage


@dataclass(slots=True)
class EmbeddingsResult:
    body: dict[str, Any]  # an OpenAI embeddings list object
    usage: TokenUsage


@dataclass(slots=True)
class ChatStream:
    """An upstream stream that has already answered 2xx.

    Iterating yields OpenAI chat.completion.chunk dicts. When the upstream reports usage, the last chunk is a
    usage-only chunk (`choices: []`, `usage: {...}`) as OpenAI sends with `stream_options.include_usage`, and
    `usage` is set; the proxy decides whether the client asked to see that chunk.
    """

    chunks: AsyncIterator[dict[str, Any]]
    usage: TokenUsage | None = None
    close_callbacks: list = field(default_factory=list)

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self.chunks

    async def aclose(self) -> None:
        aclose = getattr(self.chunks, "aclose", None)
        if aclose is not None:
            await aclose()
        for callback in self.close_callbacks:
            await callback()


class ProviderAdapter(Protocol):
    kind: str

    async def chat(self, client: httpx.AsyncClient, target: Target, body: dict[str, Any]) -> ChatResult: ...

    async def open_chat_stream(self, client: httpx.AsyncClient, target: Target, body: dict[str, Any]) -> ChatStream:
        """Send the request and return once the upstream has answered 2xx; raise UpstreamError otherwise."""
        ...

    async def embeddings(self, client: httpx.AsyncClient, target: Target, body: dict[str, Any]) -> EmbeddingsResult: ...
