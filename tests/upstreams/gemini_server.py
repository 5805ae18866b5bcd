"""A loopback server speaking Gemini's wire format (the Generative Language API), errors and streams included.

Routes: POST /v1beta/models/{model}:generateContent, :streamGenerateContent?alt=sse (each `data:` line a whole
GenerateContentResponse, events ended by CRLF CRLF as Google sends them) and :batchEmbedContents.

Like the real API it is strict, so a mistranslated request fails here as it would there: no key is a 403
PERMISSION_DENIED, a wrong key a 400 INVALID_ARGUMENT (reason API_KEY_INVALID), an unknown field anywhere in the
request (OpenAI's `messages`, JSON Schema's `additionalProperties`) a 400, a role other than user/model a 400, and
a turn whose function responses do not match the previous turn's function calls one for one a 400.

Behaviour is chosen by the model name in the URL:
  *fail-500*     -> 500 INTERNAL        *rate-limit* -> 429 RESOURCE_EXHAUSTED, RetryInfo 7s, no Retry-After
  *bad-request*  -> 400 INVALID_ARGUMENT *slow*      -> waits 3 s first
  *location*     -> 400 FAILED_PRECONDITION (Google's answer from a country the API does not serve)
  *stream-error* -> a stream that breaks off with an error object after two pieces
  *blocked*      -> the prompt is blocked (promptFeedback.blockReason SAFETY, no candidates)
  *tools*        -> a signed functionCall to the first declared function; once its functionResponse comes back,
                    a text answer (TOOL_RESULT_REPLY)
  anything else  -> a fixed reply with fixed usage (the token constants below)
"""

import asyncio

import orjson

from tests.upstreams.server import RequestLog, read_body, send_json, send_sse

API_KEY = "gemini-upstream-test"
RESPONSE_ID = "gemini-test-response"
REPLY = "Hello from the Gemini test upstream."
TOOL_RESULT_REPLY = "It is sunny in Paris."
TOOL_ARGS = {"city": "Paris"}
THOUGHT_SIGNATURE = "c2lnbmVkLWJ5LXRoZS10ZXN0LXVwc3RyZWFt"
STREAM_PIECES = ["Hello", " from", " the", " stream", "."]
EMBEDDING = [0.25, -0.5, 0.125]  # exact in float32, so base64 round trips compare equal

# usageMetadata of every reply: candidatesTokenCount excludes thinking, promptTokenCount includes the cache hit.
PROMPT_TOKENS, CANDIDATES_TOKENS, THOUGHTS_TOKENS, CACHED_TOKENS = 11, 7, 3, 4
STREAM_CANDIDATES_TOKENS = 5

REQUEST_FIELDS = {"contents", "systemInstruction", "generationConfig", "tools", "toolConfig", "safetySettings",
                  "cachedContent"}  # fmt: skip
GENERATION_FIELDS = {
    "stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema", "responseModalities",
    "candidateCount", "maxOutputTokens", "temperature", "topP", "topK", "seed", "presencePenalty",
    "frequencyPenalty", "responseLogprobs", "logprobs", "thinkingConfig",
}  # fmt: skip
SCHEMA_FIELDS = {
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties", "required",
    "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf", "propertyOrdering",
    "default", "items", "minimum", "maximum",
}  # fmt: skip


def google_error(code: int, status: str, message: str, details: list | None = None) -> dict:
    error = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def usage_metadata(candidates_tokens: int) -> dict:
    return {
        "promptTokenCount": PROMPT_TOKENS,
        "candidatesTokenCount": candidates_tokens,
        "totalTokenCount": PROMPT_TOKENS + candidates_tokens + THOUGHTS_TOKENS,
        "cachedContentTokenCount": CACHED_TOKENS,
        "thoughtsTokenCount": THOUGHTS_TOKENS,
    }


def unknown_field(name: str, where: str = "") -> dict:
    at = f" at '{where}'" if where else ""
    message = f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.'
    return google_error(400, "INVALID_ARGUMENT", message)


def schema_problem(schema, where: str) -> dict | None:
    if not isinstance(schema, dict):
        return None
    for key, value in schema.items():
        if key not in SCHEMA_FIELDS:
            return unknown_field(key, where)
        children = list(value.values()) if key == "properties" else value if key == "anyOf" else [value]
        if key in ("properties", "anyOf", "items"):
            for child in children:
                if problem := schema_problem(child, where):
                    return problem
    return None


def request_problem(payload: dict) -> dict | None:
    """The first reason the real API would refuse this GenerateContentRequest, as its error body."""
    for name in payload:
        if name not in REQUEST_FIELDS:
            return unknown_field(name)
    config = payload.get("generationConfig") or {}
    for name in config:
        if name not in GENERATION_FIELDS:
            return unknown_field(name, "generation_config")
    if problem := schema_problem(config.get("responseSchema"), "generation_config.response_schema"):
        return problem
    for tool in payload.get("tools") or []:
        for declaration in tool.get("functionDeclarations") or []:
            if problem := schema_problem(declaration.get("parameters"), "tools[0].function_declarations"):
                return problem
    contents = payload.get("contents") or []
    if not contents:
        return google_error(400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified\n")
    previous_calls = 0
    for content in contents:
        if content.get("role") not in ("user", "model"):
            return google_error(400, "INVALID_ARGUMENT", "Please use a valid role: user, model.")
        responses = sum("functionResponse" in part for part in content.get("parts") or [])
        if responses and responses != previous_calls:
            message = (
                "Please ensure that the number of function response parts is equal to the number of function "
                "call parts of the function call turn."
            )
            return google_error(400, "INVALID_ARGUMENT", message)
        previous_calls = sum("functionCall" in part for part in content.get("parts") or [])
    return None


class GeminiUpstream:
    def __init__(self, *, api_key: str = API_KEY, stream_delay_s: float = 0.0):
        self.api_key = api_key
        self.stream_delay_s = stream_delay_s
        self.log = RequestLog()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        entry = self.log.record(scope, body)
        query = dict(pair.partition("=")[::2] for pair in entry["query"].split("&") if pair)
        presented = entry["headers"].get("x-goog-api-key") or query.get("key")
        if not presented:
            message = (
                "Method doesn't allow unregistered callers (callers without established identity). "
                "Please use API Key or other form of API consumer identity to call this API."
            )
            return await send_json(send, 403, google_error(403, "PERMISSION_DENIED", message))
        if presented != self.api_key:
            details = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
            ]
            error = google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", details)
            return await send_json(send, 400, error)
        prefix, _, model_method = scope["path"].partition("/models/")
        model, _, method = model_method.partition(":")
        payload = entry["json"] or {}
        if not prefix.endswith("/v1beta") or method not in (
            "generateContent",
            "streamGenerateContent",
            "batchEmbedContents",
        ):
            message = f"models/{model} is not found for API version v1beta, or is not supported for {method}."
            return await send_json(send, 404, google_error(404, "NOT_FOUND", message))
        if "fail-500" in model:
            message = "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"
            return await send_json(send, 500, google_error(500, "INTERNAL", message))
        if "rate-limit" in model:
            details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]
            message = "You exceeded your current quota, please check your plan and billing details."
            return await send_json(send, 429, google_error(429, "RESOURCE_EXHAUSTED", message, details))
        if "bad-request" in model:
            message = "* GenerationConfig.temperature: must be between 0 and 2\n"
            return await send_json(send, 400, google_error(400, "INVALID_ARGUMENT", message))
        if "location" in model:
            message = "User location is not supported for the API use."
            return await send_json(send, 400, google_error(400, "FAILED_PRECONDITION", message))
        if method == "batchEmbedContents":
            return await self.embeddings(send, model, payload)
        if problem := request_problem(payload):
            return await send_json(send, 400, problem)
        if "slow" in model:
            await asyncio.sleep(3)
        if method == "streamGenerateContent":
            if query.get("alt") != "sse":  # without alt=sse Google streams one JSON array instead
                return await send_json(send, 400, google_error(400, "INVALID_ARGUMENT", "this server speaks alt=sse"))
            return await self.stream(send, model, payload)
        return await send_json(send, 200, self.response(model, payload))

    def base(self, model: str) -> dict:
        return {"modelVersion": model, "responseId": RESPONSE_ID}

    def parts(self, model: str, payload: dict) -> list[dict]:
        declarations = [d for tool in payload.get("tools") or [] for d in tool.get("functionDeclarations") or []]
        if "tools" not in model or not declarations:
            return [{"text": REPLY}]
        last_turn = payload["contents"][-1]["parts"]
        if any("functionResponse" in part for part in last_turn):
            return [{"text": TOOL_RESULT_REPLY}]
        call = {"name": declarations[0]["name"], "args": TOOL_ARGS}
        return [{"functionCall": call, "thoughtSignature": THOUGHT_SIGNATURE}]

    def response(self, model: str, payload: dict) -> dict:
        if "blocked" in model:
            return {"promptFeedback": {"blockReason": "SAFETY"}, **self.base(model),
                    "usageMetadata": {"promptTokenCount": PROMPT_TOKENS, "totalTokenCount": PROMPT_TOKENS}}  # fmt: skip
        count = (payload.get("generationConfig") or {}).get("candidateCount") or 1
        candidates = [
            {"content": {"parts": self.parts(model, payload), "role": "model"}, "finishReason": "STOP", "index": i}
            for i in range(count)
        ]
        return {"candidates": candidates, "usageMetadata": usage_metadata(CANDIDATES_TOKENS), **self.base(model)}

    async def stream(self, send, model: str, payload: dict) -> None:
        def event(response: dict) -> bytes:
            return b"data: " + orjson.dumps(response) + b"\r\n\r\n"

        parts = self.parts(model, payload)
        if "blocked" in model or "text" not in parts[0]:
            return await send_sse(send, [event(self.response(model, payload))])
        events = []
        for number, piece in enumerate(STREAM_PIECES, start=1):
            candidate = {"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}
            # Until the last event Google reports a running count; only the last one is the bill.
            usage = {"promptTokenCount": PROMPT_TOKENS, "candidatesTokenCount": number,
                     "totalTokenCount": PROMPT_TOKENS + number}  # fmt: skip
            if number == len(STREAM_PIECES):
                candidate["finishReason"] = "STOP"
                usage = usage_metadata(STREAM_CANDIDATES_TOKENS)
            events.append(event({"candidates": [candidate], "usageMetadata": usage, **self.base(model)}))
        if "stream-error" in model:
            error = google_error(500, "INTERNAL", "An internal error has occurred while streaming.")
            events = [*events[:2], event(error)]
        await send_sse(send, events, delay_s=self.stream_delay_s)

    async def embeddings(self, send, model: str, payload: dict) -> None:
        requests = payload.get("requests") or []
        for name in payload:
            if name != "requests":
                return await send_json(send, 400, unknown_field(name))
        embeddings = []
        for request in requests:
            if request.get("model") != f"models/{model}":
                message = (
                    f"Model in request ({request.get('model')}) does not match the model in the URL (models/{model})."
                )
                return await send_json(send, 400, google_error(400, "INVALID_ARGUMENT", message))
            size = request.get("outputDimensionality") or len(EMBEDDING)
            embeddings.append({"values": (EMBEDDING * size)[:size]})
        await send_json(send, 200, {"embeddings": embeddings})
