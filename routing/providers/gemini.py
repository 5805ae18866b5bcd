"""Google Gemini, the Generative Language API: generateContent, streamGenerateContent and batchEmbedContents.

URL: {base_url}/models/{model}:generateContent, where base_url is https://generativelanguage.googleapis.com/v1beta;
the key goes in `x-goog-api-key`. OpenAI messages become Gemini `contents` of `parts` with roles user/model; system
and developer messages become `systemInstruction`. Replies come back as OpenAI chat.completion objects and chunks.

Gemini gives function calls no ids, so we make up `call_...` ids. Gemini 3 also signs each function call
(`thoughtSignature`) and rejects a later turn that replays the call without it; we carry the signature inside the
id (`call_<hex>.sig.<signature>`) so it survives a stateless round trip through the client.
"""

import base64
import secrets
import struct
import time
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from core.errors import UpstreamError
from core.values import Target, TokenUsage
from routing.providers import http
from routing.providers.base import ChatResult, ChatStream, EmbeddingsResult
from routing.providers.gemini_request import SIGNATURE_MARK, gemini_request
from routing.providers.sse import iter_sse

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"

_ERROR_TYPES = {
    "INVALID_ARGUMENT": "invalid_request_error", "FAILED_PRECONDITION": "invalid_request_error",
    "OUT_OF_RANGE": "invalid_request_error", "NOT_FOUND": "invalid_request_error",
    "UNAUTHENTICATED": "authentication_error", "PERMISSION_DENIED": "permission_error",
    "RESOURCE_EXHAUSTED": "rate_limit_error",
}  # fmt: skip
_FILTERED = {"SAFETY", "RECITATION", "LANGUAGE", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}


def parse_gemini_error(status: int, body: bytes, headers: httpx.Headers) -> UpstreamError:
    message, error_type, code, retry_after = f"upstream answered HTTP {status}", "server_error", None, None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, list) and payload:  # the JSON-array stream framing wraps errors in a list
        payload = payload[0]
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or message)
        code = error.get("status") or None
        error_type = _ERROR_TYPES.get(str(code), "server_error")
        for detail in error.get("details") or []:
            if not isinstance(detail, dict):
                continue
            if detail.get("reason") == "API_KEY_INVALID":
                # Google answers a wrong key with 400 INVALID_ARGUMENT; to the client it is an auth failure.
                error_type, code = "authentication_error", "invalid_api_key"
            # RetryInfo's delay is a Duration ("47.43s"); Retry-After wants whole seconds.
            delay = str(detail.get("retryDelay") or "")
            if delay.endswith("s") and delay[:-1].replace(".", "", 1).isdigit():
                retry_after = str(max(1, round(float(delay[:-1]))))
    return UpstreamError(message, status=status, error_type=error_type, code=code, retry_after=retry_after)


def usage_from_gemini(meta: dict[str, Any] | None) -> TokenUsage | None:
    if not meta:
        return None
    return TokenUsage(
        # Prompts for built-in tools (search grounding) are billed as input: totalTokenCount includes them.
        prompt_tokens=int(meta.get("promptTokenCount") or 0) + int(meta.get("toolUsePromptTokenCount") or 0),
        # Thinking tokens are billed as output, as OpenAI's reasoning tokens are.
        completion_tokens=int(meta.get("candidatesTokenCount") or 0) + int(meta.get("thoughtsTokenCount") or 0),
        cached_tokens=int(meta.get("cachedContentTokenCount") or 0),
    )


def openai_usage(usage: TokenUsage, meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": int(meta.get("thoughtsTokenCount") or 0)},
    }


def _finish_reason(reason: str | None, *, has_tool_calls: bool) -> str | None:
    if reason is None:
        return None
    if reason in _FILTERED:
        return "content_filter"
    if reason == "MAX_TOKENS":
        return "length"
    return "tool_calls" if has_tool_calls else "stop"


def _tool_call(part: dict[str, Any]) -> dict[str, Any]:
    call = part["functionCall"]
    call_id = f"call_{secrets.token_hex(12)}"
    if part.get("thoughtSignature"):
        call_id += SIGNATURE_MARK + part["thoughtSignature"]
    arguments = orjson.dumps(call.get("args") or {}).decode()
    return {"id": call_id, "type": "function", "function": {"name": call.get("name", ""), "arguments": arguments}}


def _split_parts(candidate: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    parts = (candidate.get("content") or {}).get("parts") or []
    # Parts marked `thought` are thinking summaries, not the answer.
    text = "".join(part["text"] for part in parts if "text" in part and not part.get("thought"))
    return text, [_tool_call(part) for part in parts if "functionCall" in part]


def openai_completion(payload: dict[str, Any], *, model: str) -> tuple[dict[str, Any], TokenUsage | None]:
    choices = []
    for candidate in payload.get("candidates") or []:
        text, tool_calls = _split_parts(candidate)
        message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        finish = _finish_reason(candidate.get("finishReason") or "STOP", has_tool_calls=bool(tool_calls))
        index = candidate.get("index", 0)
        choices.append({"index": index, "message": message, "logprobs": None, "finish_reason": finish})
    if not choices:  # the prompt itself was blocked: promptFeedback.blockReason, no candidates
        message = {"role": "assistant", "content": None, "refusal": None}
        choices = [{"index": 0, "message": message, "logprobs": None, "finish_reason": "content_filter"}]
    body = {
        "id": f"chatcmpl-{payload.get('responseId') or secrets.token_hex(12)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": payload.get("modelVersion") or model,
        "choices": choices,
    }
    meta = payload.get("usageMetadata")
    usage = usage_from_gemini(meta)
    if usage is not None:
        body["usage"] = openai_usage(usage, meta)
    return body, usage


class _StreamTranslator:
    """Turns each streamed GenerateContentResponse into OpenAI chunks, remembering what each choice has sent."""

    def __init__(self, model: str) -> None:
        self.base: dict[str, Any] = {"object": "chat.completion.chunk", "created": int(time.time()), "model": model}
        self.started: set[int] = set()
        self.tool_calls_sent: dict[int, int] = {}
        self.meta: dict[str, Any] | None = None

    def chunk(self, index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**self.base, "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    def translate(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        if "id" not in self.base:
            self.base["id"] = f"chatcmpl-{payload.get('responseId') or secrets.token_hex(12)}"
            self.base["model"] = payload.get("modelVersion") or self.base["model"]
        self.meta = payload.get("usageMetadata") or self.meta
        candidates = payload.get("candidates") or []
        if not candidates and (payload.get("promptFeedback") or {}).get("blockReason"):
            candidates = [{"index": 0, "finishReason": "SAFETY"}]
        chunks = []
        for candidate in candidates:
            index = candidate.get("index", 0)
            if index not in self.started:
                self.started.add(index)
                chunks.append(self.chunk(index, {"role": "assistant", "content": ""}))
            text, tool_calls = _split_parts(candidate)
            if text:
                chunks.append(self.chunk(index, {"content": text}))
            if tool_calls:
                # Gemini sends each call whole, so one delta carries its id, name and all of its arguments.
                first = self.tool_calls_sent.get(index, 0)
                deltas = [{"index": first + i, **call} for i, call in enumerate(tool_calls)]
                self.tool_calls_sent[index] = first + len(tool_calls)
                chunks.append(self.chunk(index, {"tool_calls": deltas}))
            finish = _finish_reason(candidate.get("finishReason"), has_tool_calls=index in self.tool_calls_sent)
            if finish:
                chunks.append(self.chunk(index, {}, finish))
        return chunks


class GeminiAdapter:
    kind = "gemini"

    def url(self, target: Target, method: str) -> str:
        return f"{target.base_url}/models/{quote(target.model, safe='')}:{method}"

    def headers(self, target: Target) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if target.api_key:
            headers["x-goog-api-key"] = target.api_key
        headers.update(target.extra_headers)
        return headers

    async def _send(self, send, client: httpx.AsyncClient, url: str, target: Target, payload: dict[str, Any]):
        delays: list[str | None] = []

        def parse(status: int, body: bytes, headers: httpx.Headers) -> UpstreamError:
            error = parse_gemini_error(status, body, headers)
            delays.append(error.retry_after)
            return error

        content, headers = orjson.dumps(payload), self.headers(target)
        try:
            return await send(client, url, target=target, headers=headers, content=content, parse_error=parse)
        except UpstreamError as exc:
            # http reads only the Retry-After header; Google puts the delay in the body's RetryInfo instead.
            if exc.retry_after is None and delays:
                exc.retry_after = delays[-1]
            raise

    async def chat(self, client: httpx.AsyncClient, target: Target, body: dict[str, Any]) -> ChatResult:
        url = self.url(target, "generateContent")
        raw = await self._send(http.post_json, client, url, target, gemini_request(body))
        completion, usage = openai_completion(http.load_json_object(raw, target), model=target.model)
        return ChatResult(body=completion, usage=usage or TokenUsage(is_estimated=True))

    async def open_chat_stream(self, client: httpx.AsyncClient, target: Target, body: dict[str, Any]) -> ChatStream:
        url = self.url(target, "streamGenerateContent") + "?alt=sse"
        response = await self._send(http.open_stream, client, url, target, gemini_request(body))
        stream = ChatStream(chunks=None)  # type: ignore[arg-type]
        translator = _StreamTranslator(target.model)

        async def chunks():
            try:
                async for _event, data in iter_sse(response.aiter_bytes()):
                    payload = orjson.loads(data)
                    if "error" in payload:
                        error = payload["error"] if isinstance(payload["error"], dict) else {}
                        raise parse_gemini_error(int(error.get("code") or 500), data, response.headers)
                    for chunk in translator.translate(payload):
                        yield chunk
                    if translator.meta:
                        stream.usage = usage_from_gemini(translator.meta)
                if stream.usage is not None:
                    yield {**translator.base, "choices": [], "usage": openai_usage(stream.usage, translator.meta)}
            except httpx.HTTPError as exc:
                message = f"deployment '{target.deployment}' broke off its stream ({type(exc).__name__})"
                raise UpstreamError(message) from None
            finally:
                await response.aclose()

        stream.chunks = chunks()
        return stream

    async def embeddings(self, client: httpx.AsyncClient, target: Target, body: dict[str, Any]) -> EmbeddingsResult:
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        if not texts or not all(isinstance(text, str) for text in texts):
            message = "Gemini embeds a string or a list of strings, not token ids"
            raise UpstreamError(message, status=400, error_type="invalid_request_error", param="input")
        requests = []
        for text in texts:
            request: dict[str, Any] = {"model": f"models/{target.model}", "content": {"parts": [{"text": text}]}}
            if body.get("dimensions"):
                request["outputDimensionality"] = body["dimensions"]
            requests.append(request)
        url = self.url(target, "batchEmbedContents")
        raw = await self._send(http.post_json, client, url, target, {"requests": requests})
        embeddings = http.load_json_object(raw, target).get("embeddings") or []
        is_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, embedding in enumerate(embeddings):
            values = embedding.get("values") or []
            if is_base64:  # what OpenAI's SDKs ask for by default: little-endian float32, base64-encoded
                values = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
            data.append({"object": "embedding", "index": index, "embedding": values})
        # Gemini reports no token count here; the caller counts the input itself.
        usage = {"prompt_tokens": 0, "total_tokens": 0}
        result = {"object": "list", "data": data, "model": target.model, "usage": usage}
        return EmbeddingsResult(body=result, usage=TokenUsage(is_estimated=True))
