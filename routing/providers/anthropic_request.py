"""OpenAI chat request body -> Anthropic Messages request body, for AnthropicAdapter.

Anthropic needs more than renamed fields:
- the system prompt is a top-level `system` field, not a message;
- turns alternate user/assistant, and tool results travel as `tool_result` blocks inside a user turn;
- `max_tokens` is required;
- tool arguments are JSON objects (`input`), not JSON strings.

A request that cannot be expressed for Anthropic raises UpstreamError 400 before anything is sent.
"""

from typing import Any

import orjson

from core.errors import UpstreamError
from core.values import Target

DEFAULT_MAX_TOKENS = 4096

JSON_OBJECT_INSTRUCTION = "Respond with a single valid JSON object and nothing else: no prose, no code fences."


def invalid_request(message: str, *, param: str | None = None) -> UpstreamError:
    return UpstreamError(message, status=400, error_type="invalid_request_error", param=param, is_retryable=False)


def to_messages_request(target: Target, body: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    system_parts: list[str] = []
    turns: list[dict[str, Any]] = []
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise invalid_request("'messages' must be a list", param="messages")
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            raise invalid_request("each message must be an object", param=param)
        role = message.get("role")
        if role in ("system", "developer"):
            # Anthropic has one system prompt; system messages met mid-conversation join it, in order.
            text = _text_of(message.get("content"), param=f"{param}.content")
            if text:
                system_parts.append(text)
        elif role == "user":
            _append_turn(turns, "user", _user_blocks(message.get("content"), param=f"{param}.content"))
        elif role == "assistant":
            _append_turn(turns, "assistant", _assistant_blocks(message, param=param))
        elif role == "tool":
            _append_turn(turns, "user", [_tool_result(message, param=param)])
        else:
            raise invalid_request(f"message role '{role}' is not supported for Anthropic models", param=f"{param}.role")
    for turn in turns:
        if turn["role"] == "user":
            # Anthropic wants a turn's tool results before its text; sorted() is stable, so order within each holds.
            turn["content"] = sorted(turn["content"], key=lambda block: block["type"] != "tool_result")

    if (body.get("n") or 1) != 1:
        raise invalid_request("Anthropic models return one choice; 'n' must be 1", param="n")
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    request: dict[str, Any] = {
        "model": target.model,
        # Anthropic requires max_tokens; OpenAI clients usually leave it out.
        "max_tokens": max_tokens or target.max_output_tokens or DEFAULT_MAX_TOKENS,
        "messages": turns,
    }
    instruction = _response_format_instruction(body.get("response_format"))
    if instruction:
        system_parts.append(instruction)
    if system_parts:
        request["system"] = "\n\n".join(system_parts)
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            request[key] = body[key]
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop:
        request["stop_sequences"] = stop
    if body.get("user"):
        request["metadata"] = {"user_id": str(body["user"])}
    tools = body.get("tools")
    if tools:
        request["tools"] = _tools(tools)
        tool_choice = _tool_choice(body.get("tool_choice"))
        if body.get("parallel_tool_calls") is False and tool_choice["type"] != "none":
            tool_choice["disable_parallel_tool_use"] = True
        request["tool_choice"] = tool_choice
    if stream:
        request["stream"] = True
    return request


def _append_turn(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if not blocks:
        return  # Anthropic rejects empty turns
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _text_of(content: Any, *, param: str) -> str:
    """The text of a string or a list of text parts (OpenAI allows both for system, assistant and tool)."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise invalid_request("content must be a string or a list of parts", param=param)
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in ("text", "refusal"):
            raise invalid_request("only text parts are allowed here", param=f"{param}[{j}]")
        texts.append(str(part.get("text") or part.get("refusal") or ""))
    return "\n".join(text for text in texts if text)


def _user_blocks(content: Any, *, param: str) -> list[dict[str, Any]]:
    if content is None or isinstance(content, str):
        # Anthropic rejects empty text blocks.
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise invalid_request("content must be a string or a list of parts", param=param)
    blocks = []
    for j, part in enumerate(content):
        part_param = f"{param}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                blocks.append({"type": "text", "text": str(part["text"])})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            blocks.append({"type": "image", "source": _source(url, param=part_param)})
        elif kind == "file":
            file = part.get("file") or {}
            source = _source(file.get("file_data"), param=part_param)
            if source.get("media_type") != "application/pdf":
                raise invalid_request("Anthropic models accept only PDF files", param=part_param)
            blocks.append({"type": "document", "source": source})
        else:
            raise invalid_request(f"content part type '{kind}' is not supported for Anthropic models", param=part_param)
    return blocks


def _source(url: Any, *, param: str) -> dict[str, str]:
    if not isinstance(url, str) or not url:
        raise invalid_request("a URL or data: URL is required", param=param)
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type, _, encoding = header[len("data:") :].partition(";")
        if encoding != "base64" or not data:
            raise invalid_request("data: URLs must be base64-encoded", param=param)
        return {"type": "base64", "media_type": media_type, "data": data}
    if url.startswith(("https://", "http://")):
        return {"type": "url", "url": url}
    raise invalid_request("URLs must be http(s) or base64 data: URLs", param=param)


def _assistant_blocks(message: dict[str, Any], *, param: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    text = _text_of(message.get("content"), param=f"{param}.content")
    if text:
        blocks.append({"type": "text", "text": text})
    for k, call in enumerate(message.get("tool_calls") or []):
        call_param = f"{param}.tool_calls[{k}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not call.get("id") or not function.get("name"):
            raise invalid_request("a tool call needs an id and a function name", param=call_param)
        arguments = function.get("arguments") or "{}"
        try:
            arguments_object = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            arguments_object = None
        if not isinstance(arguments_object, dict):
            raise invalid_request("tool call arguments must be a JSON object", param=f"{call_param}.function.arguments")
        blocks.append({"type": "tool_use", "id": call["id"], "name": function["name"], "input": arguments_object})
    return blocks


def _tool_result(message: dict[str, Any], *, param: str) -> dict[str, Any]:
    if not message.get("tool_call_id"):
        raise invalid_request("a tool message needs its tool_call_id", param=f"{param}.tool_call_id")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message["tool_call_id"]}
    text = _text_of(message.get("content"), param=f"{param}.content")
    if text:
        block["content"] = text
    return block


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise invalid_request("'tools' must be a list", param="tools")
    converted = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if not isinstance(function, dict) or not function.get("name"):
            raise invalid_request("only function tools with a name are supported", param=f"tools[{i}]")
        converted_tool = {
            "name": function["name"],
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            converted_tool["description"] = function["description"]
        converted.append(converted_tool)
    return converted


def _tool_choice(choice: Any) -> dict[str, Any]:
    if choice is None or choice == "auto":
        return {"type": "auto"}
    if choice == "none":
        return {"type": "none"}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if name:
            return {"type": "tool", "name": name}
    raise invalid_request("tool_choice must be auto, none, required or a named function", param="tool_choice")


def _response_format_instruction(response_format: Any) -> str | None:
    # Best-effort JSON mode: the Messages API has no response_format, so we ask for JSON in the system prompt.
    # The reply is not validated against the schema; a client that must be sure should validate it.
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return JSON_OBJECT_INSTRUCTION
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if schema is None:
            return JSON_OBJECT_INSTRUCTION
        return f"{JSON_OBJECT_INSTRUCTION} It must conform to this JSON Schema:\n{orjson.dumps(schema).decode()}"
    return None
