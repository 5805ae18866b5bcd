"""A loopback server speaking OpenAI's wire format (and Azure's URL scheme), errors and streams included.

Behaviour is chosen by the upstream model name the gateway sends, so one server covers every scenario:
  *fail-500*  -> 500 server_error        *rate-limit* -> 429 with Retry-After   *bad-request* -> 400 with param
  *slow*      -> waits 3 s first          *no-usage*   -> stream without a usage chunk
  *tools*     -> answers with a tool call  anything else -> a fixed reply with fixed usage (PROMPT/COMPLETION_TOKENS)
"""

import asyncio
import time

import orjson

from tests.upstreams.server import RequestLog, read_body, send_json, send_sse

PROMPT_TOKENS, COMPLETION_TOKENS, CACHED_TOKENS = 9, 12, 0
REPLY = "Hello from the OpenAI test upstream."
STREAM_PIECES = ["Hello", " from", " the", " stream", "."]
STREAM_COMPLETION_TOKENS = 5


def openai_error(message: str, error_type: str, *, code=None, param=None) -> dict:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


class OpenAIUpstream:
    def __init__(self, *, api_key: str = "sk-upstream-test", azure: bool = False, stream_delay_s: float = 0.0):
        self.api_key = api_key
        self.azure = azure
        self.stream_delay_s = stream_delay_s
        self.log = RequestLog()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        entry = self.log.record(scope, body)
        headers = entry["headers"]
        presented = headers.get("api-key") if self.azure else headers.get("authorization", "").removeprefix("Bearer ")
        if presented != self.api_key:
            error = openai_error("Incorrect API key provided.", "invalid_request_error", code="invalid_api_key")
            return await send_json(send, 401, error)
        payload = entry["json"] or {}
        path = scope["path"]
        if self.azure:
            # /openai/deployments/{deployment}/{operation}; the deployment plays the model's part.
            parts = path.split("/")
            if len(parts) < 5 or parts[1:3] != ["openai", "deployments"] or "api-version=" not in entry["query"]:
                return await send_json(send, 404, openai_error("Resource not found", "invalid_request_error"))
            model, operation = parts[3], "/".join(parts[4:])
        else:
            model, operation = str(payload.get("model", "")), path.rsplit("/v1/", 1)[-1]
        if operation == "embeddings":
            return await self.embeddings(send, model, payload)
        if operation != "chat/completions":
            return await send_json(send, 404, openai_error(f"Unknown path {path}", "invalid_request_error"))
        if "fail-500" in model:
            return await send_json(send, 500, openai_error("The server had an error.", "server_error"))
        if "rate-limit" in model:
            return await send_json(
                send,
                429,
                openai_error("Rate limit reached.", "requests", code="rate_limit_exceeded"),
                headers=[(b"retry-after", b"7")],
            )
        if "bad-request" in model:
            error = openai_error("Invalid value for 'temperature'.", "invalid_request_error", param="temperature")
            return await send_json(send, 400, error)
        if "slow" in model:
            await asyncio.sleep(3)
        if payload.get("stream"):
            return await self.stream(send, model, payload)
        return await send_json(send, 200, self.completion(model, payload))

    def completion(self, model: str, payload: dict) -> dict:
        message: dict = {"role": "assistant", "content": REPLY, "refusal": None}
        finish = "stop"
        if "tools" in model and payload.get("tools"):
            name = payload["tools"][0]["function"]["name"]
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_test1",
                        "type": "function",
                        "function": {"name": name, "arguments": '{"city":"Paris"}'},
                    }
                ],
            }
            finish = "tool_calls"
        choices = [
            {"index": i, "message": message, "logprobs": None, "finish_reason": finish}
            for i in range(int(payload.get("n") or 1))
        ]
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": choices,
            "system_fingerprint": "fp_test",
            "usage": {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": COMPLETION_TOKENS,
                "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
                "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS},
            },
        }

    async def stream(self, send, model: str, payload: dict) -> None:
        base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}

        def event(extra: dict) -> bytes:
            return b"data: " + orjson.dumps({**base, **extra}) + b"\n\n"

        events = [
            event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
        ]
        if "tools" in model and payload.get("tools"):
            name = payload["tools"][0]["function"]["name"]
            events.append(
                event(
                    {
                        "choices": [
                            {
                                "index": 0,
                                "delta": {
                                    "tool_calls": [
                                        {
                                            "index": 0,
                                            "id": "call_test1",
                                            "type": "function",
                                            "function": {"name": name, "arguments": ""},
                                        }
                                    ]
                                },
                                "finish_reason": None,
                            }
                        ]
                    }
                )
            )
            for part in ['{"city":', '"Paris"}']:
                events.append(
                    event(
                        {
                            "choices": [
                                {
                                    "index": 0,
                                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": part}}]},
                                    "finish_reason": None,
                                }
                            ]
                        }
                    )
                )
            finish = "tool_calls"
        else:
            for piece in STREAM_PIECES:
                events.append(event({"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}))
            finish = "stop"
        events.append(event({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}))
        wants_usage = (payload.get("stream_options") or {}).get("include_usage")
        if wants_usage and "no-usage" not in model:
            usage = {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": STREAM_COMPLETION_TOKENS,
                "total_tokens": PROMPT_TOKENS + STREAM_COMPLETION_TOKENS,
            }
            events.append(event({"choices": [], "usage": usage}))
        events.append(b"data: [DONE]\n\n")
        await send_sse(send, events, delay_s=self.stream_delay_s)

    async def embeddings(self, send, model: str, payload: dict) -> None:
        inputs = payload.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        data = [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(len(items))]
        usage = {"prompt_tokens": 4 * len(items), "total_tokens": 4 * len(items)}
        await send_json(send, 200, {"object": "list", "data": data, "model": model, "usage": usage})
