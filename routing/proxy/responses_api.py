"""The inbound OpenAI Responses API (`POST /v1/responses`) on top of the gateway's canonical chat format.

A Responses request is translated to a chat completions request (then routed like any other: the adapters
translate on to Anthropic or Gemini), and the chat reply back to a Response object (stream events:
responses_stream.py). Conversation state (`previous_response_id`) is kept by responses_store.py; here, a
previous response only contributes the chat messages it stored. Pure functions, no Django and no I/O.
"""

import time
import uuid
from typing import Any

from core.bounds import MAX_INTEGER, clip
from core.values import TokenUsage
from routing.providers.openai_compatible import usage_from_openai

MAX_METADATA_PAIRS, MAX_METADATA_KEY, MAX_METADATA_VALUE = 16, 64, 512
# Tools that run inside OpenAI's own platform: no chat upstream can run them for us.
BUILT_IN_TOOLS = {
    "web_search",
    "web_search_preview",
    "web_search_2025_08_26",
    "web_search_preview_2025_03_11",
    "file_search",
    "computer_use_preview",
    "computer",
    "code_interpreter",
    "image_generation",
    "mcp",
    "local_shell",
    "shell",
    "apply_patch",
    "custom",
    "tool_search",
}
TEXT_PART_TYPES = {"input_text", "output_text", "text", "summary_text"}


class InvalidResponsesRequest(ValueError):
    """A /v1/responses body the gateway cannot serve: a 400 invalid_request_error naming `param`."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


def new_response_id() -> str:
    return f"resp_{uuid.uuid4().hex}"


def new_item_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


# --- request: Responses -> chat ------------------------------------------------------------------------------


def input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's `input` as a list of items (a string is one user message), each given an id as OpenAI
    does for what input_items lists. Raises on anything that is not a list of objects."""
    raw = body.get("input")
    if raw is None:
        raise InvalidResponsesRequest("'input' is required: a string or an array of input items.", "input")
    if isinstance(raw, str):
        raw = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": raw}]}]
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise InvalidResponsesRequest("'input' must be a string or an array of input items.", "input")
    items = []
    for item in raw:
        item = dict(item)
        if "role" in item and "type" not in item:
            item["type"] = "message"
        if item.get("type") == "message" and isinstance(item.get("content"), str):
            part = "output_text" if item.get("role") == "assistant" else "input_text"
            item["content"] = [{"type": part, "text": item["content"]}]
        if not isinstance(item.get("id"), str):
            item["id"] = new_item_id({"message": "msg", "function_call": "fc"}.get(item.get("type"), "item"))
        items.append(item)
    return items


def to_chat_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Input items -> chat messages. Function calls join the assistant message before them (chat puts an
    answer's text and tool calls in one message); each function_call_output becomes a `tool` message."""
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        param, kind = f"input[{i}]", item.get("type")
        if kind == "message":
            messages.append(_message(item, param))
        elif kind == "function_call":
            call_id, name = item.get("call_id"), item.get("name")
            if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
                raise InvalidResponsesRequest(f"'{param}' needs a string 'call_id' and 'name'.", param)
            arguments = item.get("arguments")
            if not isinstance(arguments, str):
                raise InvalidResponsesRequest(f"'{param}.arguments' must be a JSON string.", f"{param}.arguments")
            call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            last = messages[-1] if messages else None
            if last is None or last["role"] != "assistant":
                last = {"role": "assistant", "content": None}
                messages.append(last)
            last.setdefault("tool_calls", []).append(call)
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str) or not call_id:
                raise InvalidResponsesRequest(f"'{param}.call_id' must be a non-empty string.", f"{param}.call_id")
            messages.append({"role": "tool", "tool_call_id": call_id, "content": _output_text(item, param)})
        elif kind == "reasoning":
            continue  # another model's reasoning: no chat upstream takes it back
        else:
            raise InvalidResponsesRequest(
                f"'{param}.type' '{clip(str(kind), 64)}' is not supported: send messages, function_call and "
                "function_call_output items.",
                f"{param}.type",
            )
    return messages


def _message(item: dict[str, Any], param: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise InvalidResponsesRequest(
            f"'{param}.role' must be one of user, assistant, system, developer.", f"{param}.role"
        )
    content = item.get("content")
    if not isinstance(content, list):
        raise InvalidResponsesRequest(f"'{param}.content' must be a string or an array of parts.", f"{param}.content")
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        part_param = f"{param}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in TEXT_PART_TYPES:
            if not isinstance(part.get("text"), str):
                raise InvalidResponsesRequest(f"'{part_param}.text' must be a string.", f"{part_param}.text")
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "refusal":
            parts.append({"type": "text", "text": str(part.get("refusal") or "")})
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str) or not url:
                # file_id points into OpenAI's file store, which other upstreams cannot read.
                raise InvalidResponsesRequest(
                    f"'{part_param}' needs an 'image_url' (a URL or a data: URL); file_id is not supported.",
                    part_param,
                )
            image = {"url": url}
            if part.get("detail") in ("low", "high", "auto"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "input_file" and isinstance(part.get("file_data"), str):
            file = {"file_data": part["file_data"], "filename": str(part.get("filename") or "file.pdf")}
            parts.append({"type": "file", "file": file})
        else:
            raise InvalidResponsesRequest(
                f"'{part_param}' of type '{clip(str(kind), 64)}' is not supported: send input_text, input_image "
                "(image_url) or input_file (file_data) parts.",
                part_param,
            )
    if role == "assistant":
        # The function_call items that follow join this message as its tool_calls.
        return {"role": "assistant", "content": "".join(p["text"] for p in parts if p["type"] == "text")}
    if all(p["type"] == "text" for p in parts):
        return {"role": role, "content": "".join(p["text"] for p in parts) if len(parts) <= 1 else parts}
    return {"role": role, "content": parts}


def _output_text(item: dict[str, Any], param: str) -> str:
    output = item.get("output")
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        texts = [str(p.get("text") or "") for p in output if isinstance(p, dict) and p.get("type") in TEXT_PART_TYPES]
        return "\n".join(texts)
    raise InvalidResponsesRequest(f"'{param}.output' must be a string or an array of parts.", f"{param}.output")


def to_chat_request(
    body: dict[str, Any], *, items: list[dict[str, Any]], history: list[dict[str, Any]] = ()
) -> dict[str, Any]:
    """A Responses request -> a chat completions request. `items` is its input (input_items), `history` the
    chat messages of the previous response's conversation (its instructions excluded: as at OpenAI, they do
    not carry over)."""
    for name in ("background", "conversation", "prompt"):
        if body.get(name):
            raise InvalidResponsesRequest(f"'{name}' is not supported by this gateway.", name)
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise InvalidResponsesRequest("'instructions' must be a string.", "instructions")
        if instructions:
            messages.append({"role": "system", "content": instructions})
    messages += history
    messages += to_chat_messages(items)
    if not any(m["role"] != "system" for m in messages):
        raise InvalidResponsesRequest("'input' must hold at least one item.", "input")
    request: dict[str, Any] = {"model": body["model"], "messages": messages}

    max_output = body.get("max_output_tokens")
    if max_output is not None:
        if isinstance(max_output, bool) or not isinstance(max_output, int) or not 1 <= max_output <= MAX_INTEGER:
            raise InvalidResponsesRequest(
                f"'max_output_tokens' must be a positive integer up to {MAX_INTEGER}.", "max_output_tokens"
            )
        request["max_completion_tokens"] = max_output
    for name, top in (("temperature", 2), ("top_p", 1)):
        value = body.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= top:
                raise InvalidResponsesRequest(f"'{name}' must be a number from 0 to {top}.", name)
            request[name] = value
    if body.get("user") is not None:
        if not isinstance(body["user"], str):
            raise InvalidResponsesRequest("'user' must be a string.", "user")
        request["user"] = clip(body["user"], 256)
    check_metadata(body.get("metadata"))
    if body.get("parallel_tool_calls") is not None:
        if not isinstance(body["parallel_tool_calls"], bool):
            raise InvalidResponsesRequest("'parallel_tool_calls' must be a boolean.", "parallel_tool_calls")
    tools = _tools(body.get("tools"))
    if tools:
        request["tools"] = tools
        if body.get("parallel_tool_calls") is not None:
            request["parallel_tool_calls"] = body["parallel_tool_calls"]
        if body.get("tool_choice") is not None:
            request["tool_choice"] = _tool_choice(body["tool_choice"])
    response_format = _response_format(body.get("text"))
    if response_format is not None:
        request["response_format"] = response_format
    reasoning = body.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise InvalidResponsesRequest("'reasoning' must be an object.", "reasoning")
        if reasoning.get("effort") is not None:
            if reasoning["effort"] not in ("none", "minimal", "low", "medium", "high", "xhigh"):
                raise InvalidResponsesRequest(
                    "'reasoning.effort' must be none, minimal, low, medium, high or xhigh.", "reasoning.effort"
                )
            request["reasoning_effort"] = reasoning["effort"]
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidResponsesRequest("'stream' must be a boolean.", "stream")
    if stream:
        request["stream"] = True
    return request


def check_metadata(metadata: Any) -> None:
    if metadata is None:
        return
    ok = isinstance(metadata, dict) and len(metadata) <= MAX_METADATA_PAIRS
    ok = ok and all(
        isinstance(k, str) and len(k) <= MAX_METADATA_KEY and isinstance(v, str) and len(v) <= MAX_METADATA_VALUE
        for k, v in metadata.items()
    )
    if not ok:
        raise InvalidResponsesRequest(
            f"'metadata' must be an object of at most {MAX_METADATA_PAIRS} string pairs (keys up to "
            f"{MAX_METADATA_KEY} characters, values up to {MAX_METADATA_VALUE}).",
            "metadata",
        )


def _tools(tools: Any) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise InvalidResponsesRequest("'tools' must be an array.", "tools")
    converted = []
    for i, tool in enumerate(tools):
        param = f"tools[{i}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind in BUILT_IN_TOOLS or (isinstance(kind, str) and kind.startswith("web_search")):
            raise InvalidResponsesRequest(
                f"'{param}': the built-in tool '{kind}' runs inside OpenAI's platform and no deployment of this "
                "gateway offers it; only function tools are supported.",
                param,
                code="unsupported_tool",
            )
        if kind != "function" or not isinstance(tool.get("name"), str) or not tool["name"]:
            raise InvalidResponsesRequest(f"'{param}' must be a function tool with a 'name'.", param)
        function: dict[str, Any] = {"name": tool["name"]}
        parameters = tool.get("parameters")
        if parameters is not None:
            if not isinstance(parameters, dict):
                raise InvalidResponsesRequest(f"'{param}.parameters' must be an object.", f"{param}.parameters")
            function["parameters"] = parameters
        else:
            function["parameters"] = {"type": "object", "properties": {}}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        if isinstance(tool.get("strict"), bool):
            function["strict"] = tool["strict"]
        converted.append({"type": "function", "function": function})
    return converted


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidResponsesRequest(
        '\'tool_choice\' must be auto, none, required or {"type": "function", "name": ...}.', "tool_choice"
    )


def _response_format(text: Any) -> dict[str, Any] | None:
    if text is None:
        return None
    if not isinstance(text, dict):
        raise InvalidResponsesRequest("'text' must be an object.", "text")
    fmt = text.get("format")
    if fmt is None or (isinstance(fmt, dict) and fmt.get("type") == "text"):
        return None
    if isinstance(fmt, dict) and fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        if not isinstance(fmt.get("schema"), dict) or not isinstance(fmt.get("name"), str):
            raise InvalidResponsesRequest("'text.format' of type json_schema needs a 'name' and a 'schema'.", "text")
        schema = {"name": fmt["name"], "schema": fmt["schema"]}
        for key in ("strict", "description"):
            if fmt.get(key) is not None:
                schema[key] = fmt[key]
        return {"type": "json_schema", "json_schema": schema}
    raise InvalidResponsesRequest("'text.format.type' must be text, json_object or json_schema.", "text.format")


# --- response: chat -> Responses -----------------------------------------------------------------------------


def response_usage(usage: TokenUsage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def incomplete_reason(finish_reason: str | None) -> str | None:
    return {"length": "max_output_tokens", "content_filter": "content_filter"}.get(finish_reason or "")


def message_item(text: str, *, item_id: str, status: str = "completed", refusal: bool = False) -> dict[str, Any]:
    part = (
        {"type": "refusal", "refusal": text}
        if refusal
        else {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    )
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": [part]}


def function_call_item(*, item_id: str, call_id: str, name: str, arguments: str, status="completed") -> dict:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def output_of_completion(chat_body: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """A chat.completion's first choice -> Responses output items, and its finish_reason."""
    choice = (chat_body.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    incomplete = incomplete_reason(choice.get("finish_reason")) is not None
    output: list[dict[str, Any]] = []
    text = message.get("content")
    if isinstance(text, list):
        text = "".join(str(part.get("text") or "") for part in text if isinstance(part, dict))
    if text:
        status = "incomplete" if incomplete else "completed"
        output.append(message_item(text, item_id=new_item_id("msg"), status=status))
    elif message.get("refusal"):
        output.append(message_item(message["refusal"], item_id=new_item_id("msg"), refusal=True))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        output.append(
            function_call_item(
                item_id=new_item_id("fc"),
                call_id=call.get("id") or new_item_id("call"),
                name=function.get("name") or "",
                arguments=function.get("arguments") or "",
            )
        )
    return output, choice.get("finish_reason")


def response_object(
    body: dict[str, Any],
    *,
    response_id: str,
    model: str,
    created_at: int,
    status: str,
    output: list[dict[str, Any]],
    usage: TokenUsage | None,
    finish_reason: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The Response object, echoing the request's settings as OpenAI does."""
    reason = incomplete_reason(finish_reason)
    if status == "completed" and reason is not None:
        status = "incomplete"
    text = body.get("text") if isinstance(body.get("text"), dict) else {}
    reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else {}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": error,
        "incomplete_details": {"reason": reason} if status == "incomplete" and reason else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": body.get("metadata") or {},
        "model": model,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": None},
        "store": body.get("store") is not False,
        "temperature": body.get("temperature", 1.0),
        "text": {"format": text.get("format") or {"type": "text"}},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": response_usage(usage),
        "user": body.get("user"),
        "background": False,
    }


def to_response(
    body: dict[str, Any], chat_body: dict[str, Any], *, response_id: str, model: str, usage: TokenUsage | None
) -> dict[str, Any]:
    output, finish_reason = output_of_completion(chat_body)
    return response_object(
        body,
        response_id=response_id,
        model=model,
        created_at=int(time.time()),
        status="completed",
        output=output,
        usage=usage or usage_from_openai(chat_body.get("usage")),
        finish_reason=finish_reason,
    )


def output_as_chat_messages(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A response's output, as the chat messages that continue a conversation from it."""
    return to_chat_messages([item for item in output if item.get("type") in ("message", "function_call")])
