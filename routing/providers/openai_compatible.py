"""OpenAI's own wire format: OpenAI, and every server that speaks it (vLLM, Ollama, llama.cpp, TGI, Mistral,
Groq, Together, DeepSeek). Requests pass through with only `model` replaced; unknown fields are kept.

post() and open_events() are the two OpenAI-kind posts (a JSON answer, or an SSE stream of JSON events up to
[DONE]): chat completions and embeddings here, and the Responses API (openai_responses.py), go through them."""

from collections.abc import Callable
from typing import Any

import httpx
import orjson

from core.errors import UpstreamError
from core.values import Target, TokenUsage
from routing.providers import http
from routing.providers.base import ChatResult, ChatStream, EmbeddingsResult
from routing.providers.sse import iter_sse


def parse_openai_error(status: int, body: bytes, headers: httpx.Headers) -> UpstreamError:
    message, error_type, code, param = f"upstream answered HTTP {status}", "upstream_error", None, None
    try:
        payload = orjson.loads(body)
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict):
            message = str(error.get("message") or message)
            error_type = str(error.get("type") or error_type)
            code = error.get("code")
            param = error.get("param")
        elif isinstance(error, str):  # some compatible servers send {"error": "..."}
            message = error
    except orjson.JSONDecodeError:
        pass
    return UpstreamError(message, status=status, error_type=error_type, code=code, param=param)


def usage_from_openai(usage: dict[str, Any] | None) -> TokenUsage | None:
    if not usage:
        return None
    details = usage.get("prompt_tokens_details") or {}
    return TokenUsage(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0),
    )


class OpenAICompatibleAdapter:
    kind = "openai-compatible"

    def chat_url(self, target: Target) -> str:
        return f"{target.base_url}/chat/completions"

    def embeddings_url(self, target: Target) -> str:
        return f"{target.base_url}/embeddings"

    def headers(self, target: Target) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if target.api_key:
            headers["authorization"] = f"Bearer {target.api_key}"
        headers.update(target.extra_headers)
        return headers

    def upstream_body(self, target: Target, body: dict[str, Any], *, stream: bool) -> bytes:
        payload = dict(body)
        payload["model"] = target.model
        if stream:
            payload["stream"] = True
            # Always ask for usage: the record needs it whether or not the client wants to see it.
            options = dict(payload.get("stream_options") or {})
            options["include_usage"] = True
            payload["stream_options"] = options
        else:
            payload.pop("stream", None)
            payload.pop("stream_options", None)
        return orjson.dumps(payload)

    async def post(self, client: httpx.AsyncClient, target: Target, url: str, content: bytes) -> dict[str, Any]:
        """The JSON object an OpenAI-kind endpoint answers; its errors raised as UpstreamError."""
        raw = await http.post_json(
            client, url, target=target, headers=self.headers(target), content=content, parse_error=parse_openai_error
        )
        return http.load_json_object(raw, target)

    async def open_events(
        self,
        client: httpx.AsyncClient,
        target: Target,
        url: str,
        content: bytes,
        *,
        usage_of: Callable[[dict[str, Any]], TokenUsage | None],
    ) -> ChatStream:
        """An OpenAI-kind stream: its SSE events as dicts, up to [DONE]. `usage_of(event)` reads an event's
        usage (the stream's is the last one given) and raises UpstreamError for an error event."""
        response = await http.open_stream(
            client, url, target=target, headers=self.headers(target), content=content, parse_error=parse_openai_error
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
                    usage = usage_of(event)
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

    async def chat(self, client: httpx.AsyncClient, target: Target, body: dict[str, Any]) -> ChatResult:
        content = self.upstream_body(target, body, stream=False)
        payload = await self.post(client, target, self.chat_url(target), content)
        usage = usage_from_openai(payload.get("usage"))
        return ChatResult(body=payload, usage=usage or TokenUsage(is_estimated=True))

    async def open_chat_stream(self, client: httpx.AsyncClient, target: Target, body: dict[str, Any]) -> ChatStream:
        def usage_of(chunk: dict[str, Any]) -> TokenUsage | None:
            if "error" in chunk and "choices" not in chunk:
                raise parse_openai_error(500, orjson.dumps(chunk), httpx.Headers())
            return usage_from_openai(chunk.get("usage"))

        content = self.upstream_body(target, body, stream=True)
        return await self.open_events(client, target, self.chat_url(target), content, usage_of=usage_of)

    async def embeddings(self, client: httpx.AsyncClient, target: Target, body: dict[str, Any]) -> EmbeddingsResult:
        payload = {**body, "model": target.model}
        result = await self.post(client, target, self.embeddings_url(target), orjson.dumps(payload))
        usage = usage_from_openai(result.get("usage")) or TokenUsage(is_estimated=True)
        return EmbeddingsResult(body=result, usage=usage)
