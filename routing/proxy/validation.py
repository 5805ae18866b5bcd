"""Checks on /v1 request bodies: what a malformed request gets told, with `param` naming the field."""

from typing import Any

from routing.proxy.errors import InvalidRequest

_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


def _require(condition: bool, message: str, param: str) -> None:
    if not condition:
        raise InvalidRequest(message, param=param)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


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
    if "stream" in body:
        _require(isinstance(body["stream"], bool), "'stream' must be a boolean.", "stream")
    if body.get("stream_options") is not None:
        _require(isinstance(body["stream_options"], dict), "'stream_options' must be an object.", "stream_options")
    for name in ("n", "max_tokens", "max_completion_tokens"):
        if body.get(name) is not None:
            _require(_is_int(body[name]) and body[name] >= 1, f"'{name}' must be a positive integer.", name)
    if body.get("temperature") is not None:
        value = body["temperature"]
        _require(_is_number(value) and 0 <= value <= 2, "'temperature' must be a number from 0 to 2.", "temperature")
    if body.get("top_p") is not None:
        value = body["top_p"]
        _require(_is_number(value) and 0 <= value <= 1, "'top_p' must be a number from 0 to 1.", "top_p")
    if body.get("tools") is not None:
        _require(isinstance(body["tools"], list), "'tools' must be an array.", "tools")
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
