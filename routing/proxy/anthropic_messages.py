"""The inbound Anthropic Messages API (`POST /v1/messages`) on top of the gateway's canonical OpenAI format.

Clients using the official `anthropic` SDK are served by translating their request to an OpenAI chat request,
routing it like any other, and translating the reply back (stream chunks: anthropic_stream.py).
Pure functions, no Django and no I/O.
"""

import uuid
from typing import Any

import orjson

from billing import token_estimate
from core.bounds import MAX_INTEGER, clip
from core.values import TokenUsage
from routing.providers.openai_compatible import usage_from_openai

# OpenAI finish_reason -> Anthropic stop_reason. OpenAI never says which stop sequence matched, so a stop
# sequence is reported as end_turn with stop_sequence null.
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

ERROR_TYPES_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    504: "api_error",
    529: "overloaded_error",
}


class InvalidMessagesRequest(ValueError):
    """A /v1/messages body the gateway cannot serve. Rendered as Anthropic's 400 invalid_request_error."""

    status, error_type = 400, "invalid_request_error"

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def anthropic_error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def error_type_for_status(status: int) -> str:
    if status in ERROR_TYPES_BY_STATUS:
        return ERROR_TYPES_BY_STATUS[status]
    # Anthropic uses invalid_request_error for 4xx statuses it has no own type for.
    return "invalid_request_error" if status < 500 else "api_error"


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex[:24]}"


def new_tool_use_id() -> str:
    return f"toolu_{uuid.uuid4().hex[:24]}"


def anthropic_usage(usage: TokenUsage | None) -> dict[str, int]:
    """OpenAI counts cached input inside prompt_tokens; Anthropic reports it beside input_tokens."""
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    return {
        "input_tokens": max(usage.prompt_tokens - usage.cached_tokens, 0),
        "output_tokens": usage.completion_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "cache_creation_input_tokens": 0,
    }


# --- request: Anthropic -> OpenAI ---


def to_openai_request(body: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidMessagesRequest("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidMessagesRequest("model: Field required", "model")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise InvalidMessagesRequest("max_tokens: Field required", "max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= MAX_INTEGER:
        raise InvalidMessagesRequest(f"max_tokens: must be a positive integer up to {MAX_INTEGER}", "max_tokens")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidMessagesRequest("messages: must be a non-empty list", "messages")

    openai_messages: list[dict[str, Any]] = []
    system = _system_text(body.get("system"))
    if system:
        openai_messages.append({"role": "system", "content": system})
    for i, message in enumerate(messages):
        param = f"messages.{i}"
        if not isinstance(message, dict):
            raise InvalidMessagesRequest(f"{param}: must be an object", param)
        role, content = message.get("role"), message.get("content")
        if role == "user":
            openai_messages += _from_user(content, param=f"{param}.content")
        elif role == "assistant":
            openai_messages.append(_from_assistant(content, param=f"{param}.content"))
        else:
            raise InvalidMessagesRequest(f'{param}.role: Input should be "user" or "assistant"', f"{param}.role")

    request: dict[str, Any] = {"model": model, "messages": openai_messages, "max_tokens": max_tokens}
    for key, top in (("temperature", 1), ("top_p", 1)):  # top_k has no OpenAI counterpart and is dropped
        value = body.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= top:
                raise InvalidMessagesRequest(f"{key}: must be a number from 0 to {top}", key)
            request[key] = value
    stop_sequences = body.get("stop_sequences")
    if stop_sequences:
        if not isinstance(stop_sequences, list) or not all(isinstance(s, str) for s in stop_sequences):
            raise InvalidMessagesRequest("stop_sequences: must be a list of strings", "stop_sequences")
        request["stop"] = stop_sequences
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidMessagesRequest("metadata: must be an object", "metadata")
    user_id = metadata.get("user_id") if metadata else None
    if user_id:
        if not isinstance(user_id, str):
            raise InvalidMessagesRequest("metadata.user_id: must be a string", "metadata.user_id")
        request["user"] = user_id
    if body.get("tools"):
        request["tools"] = _tools(body["tools"])
        if body.get("tool_choice") is not None:
            request["tool_choice"] = _tool_choice(body["tool_choice"])
            if body["tool_choice"].get("disable_parallel_tool_use"):
                request["parallel_tool_calls"] = False
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        raise InvalidMessagesRequest("stream: must be a boolean", "stream")
    if body.get("stream"):
        request["stream"] = True
    return request


def _system_text(system: Any) -> str:
    if system is None or isinstance(system, str):
        return system or ""
    if isinstance(system, list) and all(isinstance(b, dict) and b.get("type") == "text" for b in system):
        return "\n".join(str(block.get("text") or "") for block in system)
    raise InvalidMessagesRequest("system: must be a string or a list of text blocks", "system")


def _blocks(content: Any, *, param: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not all(isinstance(block, dict) for block in content):
        raise InvalidMessagesRequest(f"{param}: must be a string or a list of content blocks", param)
    return content


def _from_user(content: Any, *, param: str) -> list[dict[str, Any]]:
    """One Anthropic user turn -> OpenAI `tool` messages for its tool results, then one user message for the rest.

    OpenAI wants tool messages right after the assistant message that called the tools.
    """
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(_blocks(content, param=param)):
        kind, block_param = block.get("type"), f"{param}.{j}"
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text") or "")})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block, param=block_param)}})
        elif kind == "document":
            parts.append(_document_part(block, param=block_param))
        elif kind == "tool_result":
            if not block.get("tool_use_id") or not isinstance(block["tool_use_id"], str):
                raise InvalidMessagesRequest(f"{block_param}.tool_use_id: Field required", f"{block_param}.tool_use_id")
            texts = []
            for k, inner in enumerate(_blocks(block.get("content") or [], param=f"{block_param}.content")):
                if inner.get("type") == "text":
                    texts.append(str(inner.get("text") or ""))
                elif inner.get("type") == "image":
                    # OpenAI tool messages carry text only: the image follows in the user message.
                    url = _image_url(inner, param=f"{block_param}.content.{k}")
                    parts.append({"type": "image_url", "image_url": {"url": url}})
                else:
                    inner_param = f"{block_param}.content.{k}"
                    raise InvalidMessagesRequest(
                        f"{inner_param}: only text and image blocks are supported", inner_param
                    )
            text = "\n".join(texts)
            # OpenAI has no is_error flag; saying so in the text keeps the model informed.
            if block.get("is_error"):
                text = f"Error: {text}" if text else "Error"
            tool_messages.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": text})
        else:
            raise InvalidMessagesRequest(
                f"{block_param}: content block type '{clip(kind)}' is not supported", block_param
            )
    if not parts:
        if not tool_messages:
            raise InvalidMessagesRequest(f"{param}: user messages must have non-empty content", param)
        return tool_messages
    if len(parts) == 1 and parts[0]["type"] == "text":
        return [*tool_messages, {"role": "user", "content": parts[0]["text"]}]
    return [*tool_messages, {"role": "user", "content": parts}]


def _source(block: dict[str, Any], *, param: str) -> dict[str, Any]:
    source = block.get("source") or {}
    if not isinstance(source, dict):
        raise InvalidMessagesRequest(f"{param}.source: must be an object", f"{param}.source")
    return source


def _image_url(block: dict[str, Any], *, param: str) -> str:
    source = _source(block, param=param)
    if source.get("type") == "base64" and source.get("data"):
        return f"data:{source.get('media_type') or 'image/png'};base64,{source['data']}"
    if source.get("type") == "url" and source.get("url"):
        return str(source["url"])
    raise InvalidMessagesRequest(f"{param}.source: only base64 and url image sources are supported", f"{param}.source")


def _document_part(block: dict[str, Any], *, param: str) -> dict[str, Any]:
    source = _source(block, param=param)
    if source.get("type") == "base64" and source.get("media_type") == "application/pdf":
        file = {"file_data": f"data:application/pdf;base64,{source.get('data') or ''}"}
        file["filename"] = str(block.get("title") or "document.pdf")
        return {"type": "file", "file": file}
    if source.get("type") == "text":
        return {"type": "text", "text": str(source.get("data") or "")}
    raise InvalidMessagesRequest(f"{param}.source: only base64 PDF and text documents are supported", f"{param}.source")


def _from_assistant(content: Any, *, param: str) -> dict[str, Any]:
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for j, block in enumerate(_blocks(content, param=param)):
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind == "tool_use":
            if not isinstance(block.get("input") or {}, dict):
                raise InvalidMessagesRequest(f"{param}.{j}.input: must be an object", f"{param}.{j}.input")
            arguments = orjson.dumps(block.get("input") or {}).decode()
            function = {"name": str(block.get("name") or ""), "arguments": arguments}
            tool_calls.append({"id": str(block.get("id") or ""), "type": "function", "function": function})
        elif kind in ("thinking", "redacted_thinking"):
            continue  # signed for Anthropic's own models; other upstreams cannot take them back
        else:
            raise InvalidMessagesRequest(
                f"{param}.{j}: content block type '{clip(kind)}' is not supported", f"{param}.{j}"
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not tool_calls else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise InvalidMessagesRequest("tools: must be a list", "tools")
    converted = []
    for i, tool in enumerate(tools):
        is_custom = isinstance(tool, dict) and tool.get("type") in (None, "custom")
        if not is_custom or not tool.get("name") or not isinstance(tool["name"], str):
            # Server tools (web search, code execution...) run inside Anthropic and cannot be routed elsewhere.
            raise InvalidMessagesRequest(f"tools.{i}: only custom tools with a name are supported", f"tools.{i}")
        schema = tool.get("input_schema") or {"type": "object"}
        if not isinstance(schema, dict):
            raise InvalidMessagesRequest(f"tools.{i}.input_schema: must be an object", f"tools.{i}.input_schema")
        function = {"name": tool["name"], "parameters": schema}
        if tool.get("description"):
            function["description"] = tool["description"]
        converted.append({"type": "function", "function": function})
    return converted


def _tool_choice(choice: Any) -> Any:
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind in ("auto", "none"):
        return kind
    if kind == "any":
        return "required"
    if kind == "tool" and choice.get("name") and isinstance(choice["name"], str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidMessagesRequest("tool_choice: type must be auto, any, tool or none", "tool_choice")


async def count_input_tokens(chat_body: dict[str, Any]) -> int:
    """What count_tokens answers: the translated prompt (system included) and the tool definitions."""
    total = await token_estimate.count_prompt_in_slices(chat_body)
    if chat_body.get("tools"):
        total += await token_estimate.count_text_in_slices(orjson.dumps(chat_body["tools"]).decode())
    return total


# --- response: OpenAI -> Anthropic ---


def to_anthropic_message(
    openai_body: dict[str, Any], *, model: str, usage: TokenUsage | None = None, message_id: str | None = None
) -> dict[str, Any]:
    """An OpenAI chat.completion -> an Anthropic message. `model` is the upstream model that answered; `usage`,
    when given, wins over the body's (the engine may have estimated what the upstream did not report)."""
    choices = openai_body.get("choices") or [{}]
    choice = choices[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    text = message.get("content")
    if isinstance(text, list):
        text = "".join(str(part.get("text") or "") for part in text if isinstance(part, dict))
    text = text or message.get("refusal")
    if text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or new_tool_use_id(),
                "name": function.get("name") or "",
                "input": tool_input(function.get("arguments")),
            }
        )
    usage = usage or usage_from_openai(openai_body.get("usage"))
    return {
        "id": message_id or new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS.get(choice.get("finish_reason"), "end_turn"),
        "stop_sequence": None,
        "usage": anthropic_usage(usage),
    }


def tool_input(arguments: Any) -> dict[str, Any]:
    """OpenAI's JSON-string arguments -> Anthropic's input object."""
    if not arguments:
        return {}
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        return parsed
    # Anthropic's input must be an object; rather than lose what the model wrote, hand it over as-is.
    return {"_raw_arguments": arguments}
