"""OpenAI's own wire format: OpenAI, and every server that speaks it (vLLM, Ollama, llama.cpp, TGI, Mistral,
Groq, Together, DeepSeek). Requests pass through with only `model` replaced; unknown fields are kept."""

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

    async def chat(self, client: httpx.AsyncClient, target: Target, body: dict[str, Any]) -> ChatResult:
        raw = await http.post_json(
            client,
            self.chat_url(target),
            target=target,
            headers=self.headers(target),
            content=self.upstream_body(target, body, stream=False),
            parse_error=parse_openai_error,
        )
        payload = http.load_json_object(raw, target)
        usage = usage_from_openai(payload.get("usage"))
        return ChatResult(body=payload, usage=usage or TokenUsage(is_estimated=True))

    async def open_chat_stream(self, client: httpx.AsyncClient, target: Target, body: dict[str, Any]) -> ChatStream:
        response = await http.open_stream(
            client,
            self.chat_url(target),
            target=target,
            headers=self.headers(target),
            content=self.upstream_body(target, body, stream=True),
            parse_error=parse_openai_error,
        )
        stream = ChatStream(chunks=None)  # type: ignore[arg-type]

        async def chunks():
            try:
                async for _event, data in iter_sse(response.aiter_bytes()):
                    if data == b"[DONE]":
                        break
                    chunk = orjson.loads(data)
                    if "error" in chunk and "choices" not in chunk:
                        raise parse_openai_error(500, data, response.headers)
                    usage = usage_from_openai(chunk.get("usage"))
                    if usage is not None:
                        stream.usage = usage
                    yield chunk
            except httpx.HTTPError as exc:
                raise UpstreamError(
                    f"deployment '{target.deployment}' broke off its stream ({type(exc).__name__})"
                ) from None
            finally:
                await response.aclose()

        stream.chunks = chunks()
        return stream

    async def embeddings(self, client: httpx.AsyncClient, target: Target, body: dict[str, Any]) -> EmbeddingsResult:
        payload = dict(body)
        payload["model"] = target.model
        raw = await http.post_json(
            client,
            self.embeddings_url(target),
            target=target,
            headers=self.headers(target),
            content=orjson.dumps(payload),
            parse_error=parse_openai_error,
        )
        result = http.load_json_object(raw, target)
        usage = usage_from_openai(result.get("usage")) or TokenUsage(is_estimated=True)
        return EmbeddingsResult(body=result, usage=usage)
