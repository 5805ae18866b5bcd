"""OpenAI chat requests as Gemini GenerateContentRequests: contents and parts, system instruction, generation
config, tools and tool config. Gemini's function calls carry no ids; we make up `call_...` ids and carry a
Gemini 3 `thoughtSignature` inside the id (`call_<hex>.sig.<signature>`) so it survives a round trip."""

from typing import Any

import orjson

SIGNATURE_MARK = ".sig."
_PENALTIES = (("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty"))
# Gemini's Schema is a subset of OpenAPI 3.0: any other key (additionalProperties, $schema, strict) is a 400.
_SCHEMA_KEYS = {
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties", "required",
    "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf", "propertyOrdering",
    "default", "items", "minimum", "maximum",
}  # fmt: skip


def gemini_request(body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat request body as a Gemini GenerateContentRequest."""
    system_parts, contents, names_by_call_id = [], [], {}
    for message in body.get("messages") or []:
        role = message.get("role")
        if role in ("system", "developer"):
            system_parts.extend(_parts(message.get("content")))
            continue
        if role == "assistant":
            parts = _parts(message.get("content"))
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                names_by_call_id[call.get("id")] = function.get("name", "")
                parts.append(_function_call_part(call.get("id") or "", function))
            gemini_role = "model"
        elif role == "tool":
            name = names_by_call_id.get(message.get("tool_call_id")) or message.get("name") or ""
            parts, gemini_role = [{"functionResponse": {"name": name, "response": _tool_output(message)}}], "user"
        else:
            parts, gemini_role = _parts(message.get("content")), "user"
        if not parts:
            continue
        # Parallel tool results must reach Gemini as one turn, so consecutive same-role messages are merged.
        if contents and contents[-1]["role"] == gemini_role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": gemini_role, "parts": parts})
    request: dict[str, Any] = {"contents": contents}
    if system_parts:
        request["systemInstruction"] = {"parts": system_parts}
    if config := _generation_config(body):
        request["generationConfig"] = config
    declarations = [_declaration(tool["function"]) for tool in body.get("tools") or [] if tool.get("function")]
    if declarations:
        request["tools"] = [{"functionDeclarations": declarations}]
    if (choice := body.get("tool_choice")) is not None:
        request["toolConfig"] = {"functionCallingConfig": _calling_config(choice)}
    return request


def _parts(content: Any) -> list[dict[str, Any]]:
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"text": content}]
    parts = []
    for item in content:
        kind = item.get("type")
        if kind == "text":
            parts.append({"text": item.get("text", "")})
        elif kind == "image_url":
            image = item.get("image_url")
            parts.append(_media_part(image.get("url", "") if isinstance(image, dict) else str(image)))
        elif kind == "input_audio":
            audio = item.get("input_audio") or {}
            parts.append({"inlineData": {"mimeType": f"audio/{audio.get('format', 'wav')}", "data": audio.get("data")}})
        elif kind == "file" and (item.get("file") or {}).get("file_data"):
            parts.append(_media_part(item["file"]["file_data"]))
    return parts


def _media_part(url: str) -> dict[str, Any]:
    if url.startswith("data:"):
        header, _, data = url[5:].partition(",")
        return {"inlineData": {"mimeType": header.split(";")[0] or "application/octet-stream", "data": data}}
    # Gemini fetches only its own Files API URIs and some public URLs; anything else it rejects with a 400.
    return {"fileData": {"fileUri": url}}


def _function_call_part(call_id: str, function: dict[str, Any]) -> dict[str, Any]:
    try:
        args = orjson.loads(function.get("arguments") or "{}")
    except orjson.JSONDecodeError:
        args = {}
    args = args if isinstance(args, dict) else {}
    part: dict[str, Any] = {"functionCall": {"name": function.get("name", ""), "args": args}}
    if SIGNATURE_MARK in call_id:
        part["thoughtSignature"] = call_id.split(SIGNATURE_MARK, 1)[1]
    return part


def _tool_output(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(item.get("text", "") for item in content if isinstance(item, dict))
    try:
        value = orjson.loads(content or "")
    except orjson.JSONDecodeError:
        value = content
    # Gemini wants an object; Google's convention for anything else is {"output": ...}.
    return value if isinstance(value, dict) else {"output": value}


def _generation_config(body: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens:
        config["maxOutputTokens"] = max_tokens
    for openai_name, gemini_name in (("temperature", "temperature"), ("top_p", "topP"), ("seed", "seed")):
        if body.get(openai_name) is not None:
            config[gemini_name] = body[openai_name]
    # Not every Gemini model accepts penalties, and many clients send 0: pass them only when they matter.
    for openai_name, gemini_name in _PENALTIES:
        if body.get(openai_name):
            config[gemini_name] = body[openai_name]
    if stop := body.get("stop"):
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if (n := body.get("n")) and n != 1:
        config["candidateCount"] = n
    response_format = body.get("response_format") or {}
    if response_format.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (response_format.get("json_schema") or {}).get("schema")
        if schema:
            config["responseSchema"] = gemini_schema(schema)
    return config


def gemini_schema(schema: Any) -> Any:
    """A JSON Schema cut down, best effort, to the OpenAPI subset Gemini's Schema accepts."""
    if not isinstance(schema, dict):
        return schema
    result: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, list):  # ["string", "null"] -> string, nullable
            kinds = [kind for kind in value if kind != "null"]
            result["type"] = kinds[0] if kinds else "null"
            if len(kinds) < len(value):
                result["nullable"] = True
        elif key == "const":
            result["enum"] = [str(value)]
        elif key == "enum":
            result["enum"] = [str(item) for item in value]
        elif key == "properties":
            result["properties"] = {name: gemini_schema(sub) for name, sub in value.items()}
        elif key == "items":
            result["items"] = gemini_schema(value)
        elif key in ("anyOf", "oneOf"):
            result["anyOf"] = [gemini_schema(sub) for sub in value]
        elif key in _SCHEMA_KEYS:
            result[key] = value
    return result


def _declaration(function: dict[str, Any]) -> dict[str, Any]:
    declaration = {"name": function.get("name", "")}
    if function.get("description"):
        declaration["description"] = function["description"]
    parameters = function.get("parameters") or {}
    # Gemini rejects an OBJECT schema with no properties, which is how OpenAI clients spell "no arguments".
    if parameters.get("properties"):
        declaration["parameters"] = gemini_schema(parameters)
    return declaration


def _calling_config(choice: Any) -> dict[str, Any]:
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return {"mode": "ANY", "allowedFunctionNames": [name]} if name else {"mode": "ANY"}
    return {"mode": {"none": "NONE", "required": "ANY"}.get(choice, "AUTO")}
