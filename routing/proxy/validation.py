"""Checks on /v1 request bodies: what a malformed request gets told, with `param` naming the field."""

from typing import Any

from core import bounds
from core.errors import InvalidRequest

_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


def _require(condition: bool, message: str, param: str) -> None:
    if not condition:
        raise InvalidRequest(message, param=param)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    return _is_int(value) and 1 <= value <= bounds.MAX_INTEGER


def check_depth(body: Any, limit: int) -> None:
    """Deeper bodies cannot be re-encoded for every upstream (orjson stops at 254 levels): refused up front."""
    path = bounds.too_deep(body, limit)
    if path is not None:
        raise InvalidRequest(
            f"'{path}' is nested deeper than {limit} levels (TOLLWAY_MAX_JSON_DEPTH).", param=path, code="too_deep"
        )


def check_model(body: Any) -> str:
    _require(isinstance(body, dict), "The request body must be a JSON object.", None)
    model = body.get("model")
    _require(isinstance(model, str) and model != "", "'model' is required and must be a non-empty string.", "model")
    return model


def check_chat(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    _require(isinstance(messages, list) and len(messages) > 0, "'messages' must be a non-empty array.", "messages")
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        _require(isinstance(message, dict), f"'{param}' must be an object.", param)
        _require(message.get("role") in _ROLES, f"'{param}.role' must be one of {sorted(_ROLES)}.", f"{param}.role")
        content = message.get("content")
        _require(
            content is None or isinstance(content, str | list),
            f"'{param}.content' must be a string or an array of content parts.",
            f"{param}.content",
        )
        for j, part in enumerate(content if isinstance(content, list) else ()):
            part_param = f"{param}.content[{j}]"
            _require(
                isinstance(part, dict) and isinstance(part.get("type"), str),
                f"'{part_param}' must be an object with a string 'type'.",
                part_param,
            )
            if part["type"] == "text":
                _require(isinstance(part.get("text"), str), f"'{part_param}.text' must be a string.", part_param)
    if "stream" in body:
        _require(isinstance(body["stream"], bool), "'stream' must be a boolean.", "stream")
    if body.get("stream_options") is not None:
        _require(isinstance(body["stream_options"], dict), "'stream_options' must be an object.", "stream_options")
    for name in ("n", "max_tokens", "max_completion_tokens"):
        if body.get(name) is not None:
            _require(_is_count(body[name]), f"'{name}' must be a positive integer up to {bounds.MAX_INTEGER}.", name)
    if body.get("temperature") is not None:
        value = body["temperature"]
        _require(_is_number(value) and 0 <= value <= 2, "'temperature' must be a number from 0 to 2.", "temperature")
    if body.get("top_p") is not None:
        value = body["top_p"]
        _require(_is_number(value) and 0 <= value <= 1, "'top_p' must be a number from 0 to 1.", "top_p")
    if body.get("tools") is not None:
        tools = body["tools"]
        _require(
            isinstance(tools, list) and all(isinstance(t, dict) for t in tools),
            "'tools' must be an array of objects.",
            "tools",
        )
    if body.get("user") is not None:
        _require(isinstance(body["user"], str), "'user' must be a string.", "user")
    if body.get("stop") is not None:
        stop = body["stop"]
        _require(
            isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop)),
            "'stop' must be a string or an array of strings.",
            "stop",
        )


def check_embeddings(body: dict[str, Any]) -> None:
    value = body.get("input")
    is_valid = (isinstance(value, str) and value != "") or (
        isinstance(value, list) and len(value) > 0 and all(isinstance(i, str | int | list) for i in value)
    )
    _require(is_valid, "'input' must be a non-empty string or array.", "input")
