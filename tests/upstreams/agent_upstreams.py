"""The OpenAI (chat completions only) and Anthropic test upstreams, taught what agent loops need.

Their *tools* models call the first tool offered on every request; an agent would loop for ever. These call it
only while the conversation's last message is not a tool result, then answer in text. The OpenAI one also
answers a `response_format` of type json_schema with a JSON document of that schema's shape (`parse` tests).
"""

import orjson

from tests.upstreams.anthropic_server import AnthropicUpstream
from tests.upstreams.openai_server import OpenAIUpstream


def _after_tool_result(payload: dict) -> bool:
    messages = payload.get("messages") or [{}]
    last = messages[-1]
    if last.get("role") == "tool":  # OpenAI chat
        return True
    content = last.get("content")
    return isinstance(content, list) and any(b.get("type") == "tool_result" for b in content if isinstance(b, dict))


def sample_of(schema: dict) -> object:
    """A value of a JSON schema's shape: the test upstream's stand-in for a model following it."""
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object":
        return {name: sample_of(sub) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [sample_of(schema.get("items") or {"type": "string"})]
    return {"string": "Paris", "integer": 3, "number": 1.5, "boolean": True}.get(kind, None)


class AgentOpenAIUpstream(OpenAIUpstream):
    def completion(self, model: str, payload: dict) -> dict:
        if _after_tool_result(payload):
            payload = {k: v for k, v in payload.items() if k != "tools"}
        body = super().completion(model, payload)
        response_format = payload.get("response_format") or {}
        if response_format.get("type") == "json_schema":
            document = sample_of(response_format["json_schema"]["schema"])
            body["choices"][0]["message"]["content"] = orjson.dumps(document).decode()
        if "max-tokens" in model:
            body["choices"][0]["finish_reason"] = "length"
        return body

    async def stream(self, send, model: str, payload: dict) -> None:
        if _after_tool_result(payload):
            payload = {k: v for k, v in payload.items() if k != "tools"}
        await super().stream(send, model, payload)


class AgentAnthropicUpstream(AnthropicUpstream):
    def wants_tool(self, model: str, payload: dict) -> bool:
        return super().wants_tool(model, payload) and not _after_tool_result(payload)
