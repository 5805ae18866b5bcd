"""A plausible value for a JSON schema, for the demo provider's tool-call arguments and JSON-schema replies.

Deterministic: the same schema and the same user message give the same value. It covers what tool and
response schemas use in practice (objects, arrays, scalars, enum/const, anyOf/oneOf/allOf, local $ref,
formats, bounds and lengths); `pattern` is not solved, and `not` or `if`/`then` are ignored.
"""

import re
from typing import Any

# Deep enough for any real tool schema, shallow enough that a recursive $ref ends.
_MAX_DEPTH = 12
_OPTIONAL_DEPTH = 4
_PLACE_NAMES = ("city", "location", "place", "destination", "origin", "country", "region", "town", "address")
_FREE_TEXT_NAMES = ("query", "question", "prompt", "text", "message", "input", "content", "search", "topic", "q")
_FORMATS = {
    "date-time": "2025-01-01T12:00:00Z",
    "date": "2025-01-01",
    "time": "12:00:00",
    "email": "demo@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uuid": "00000000-0000-4000-8000-000000000000",
}
_BY_NAME = {
    "unit": "celsius",
    "units": "metric",
    "language": "en",
    "lang": "en",
    "locale": "en-US",
    "currency": "USD",
    "timezone": "UTC",
    "email": "demo@example.com",
    "url": "https://example.com/",
    "date": "2025-01-01",
    "name": "Ada Lovelace",
}


def example_of(schema: Any, *, hint: str) -> Any:
    """A value valid against `schema`; `hint` (the last user message) supplies places and free text."""
    return _Examples(root=schema, hint=hint).value(schema, name="", depth=0)


def place_in(text: str) -> str | None:
    """The place a message names ("weather in New York?" -> "New York"), if any."""
    found = re.search(r"\b(?:in|at|for|to|from|near)\s+((?:[A-Z][\w'-]*)(?:\s+[A-Z][\w'-]*)*)", text)
    return found.group(1) if found else None


class _Examples:
    def __init__(self, *, root: Any, hint: str) -> None:
        self.root = root
        self.hint = " ".join(hint.split())

    def value(self, schema: Any, *, name: str, depth: int) -> Any:
        if not isinstance(schema, dict) or depth > _MAX_DEPTH:
            return self.string({}, name)  # `true` or `{}` accepts anything
        if "$ref" in schema:
            return self.value(self.resolve(schema["$ref"]), name=name, depth=depth + 1)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][0]
        for keyword in ("default", "examples"):
            if keyword in schema:
                found = schema[keyword]
                return found[0] if keyword == "examples" and isinstance(found, list) and found else found
        for keyword in ("anyOf", "oneOf"):
            options = [option for option in schema.get(keyword) or [] if not _is_null(option)]
            if options or schema.get(keyword):
                return self.value((options or schema[keyword])[0], name=name, depth=depth + 1)
        if schema.get("allOf"):
            return self.value(_merged(schema), name=name, depth=depth + 1)
        kind = _type_of(schema)
        if kind == "object":
            return self.object(schema, depth)
        if kind == "array":
            return self.array(schema, name, depth)
        if kind == "integer":
            return _bounded_number(schema, integer=True)
        if kind == "number":
            return _bounded_number(schema, integer=False)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self.string(schema, name)

    def resolve(self, reference: str) -> Any:
        # Only local references (#/$defs/..., #/definitions/...): a demo never fetches a schema.
        if not isinstance(reference, str) or not reference.startswith("#"):
            return {}
        node = self.root
        for part in reference.lstrip("#").strip("/").split("/"):
            if not part:
                continue
            part = part.replace("~1", "/").replace("~0", "~")
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return node

    def object(self, schema: dict, depth: int) -> dict:
        properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        # Every declared property (strict schemas, OpenAI's structured outputs, require them all anyway), until
        # a recursive schema runs deep: then only the required ones, so a tree of optional children ends.
        if depth >= _OPTIONAL_DEPTH:
            properties = {key: sub for key, sub in properties.items() if key in (schema.get("required") or [])}
        result = {key: self.value(sub, name=key, depth=depth + 1) for key, sub in properties.items()}
        for key in schema.get("required") or []:
            if key not in result:
                extra = schema.get("additionalProperties")
                result[key] = self.value(extra if isinstance(extra, dict) else {}, name=key, depth=depth + 1)
        return result

    def array(self, schema: dict, name: str, depth: int) -> list:
        prefix = schema.get("prefixItems") if isinstance(schema.get("prefixItems"), list) else []
        items = schema.get("items", {})
        count = max(int(schema.get("minItems") or 0), len(prefix), 1)
        if schema.get("maxItems") is not None:
            count = min(count, int(schema["maxItems"]))
        singular = name[:-1] if name.endswith("s") else name
        values = [
            self.value(prefix[index] if index < len(prefix) else items, name=singular, depth=depth + 1)
            for index in range(count)
        ]
        if schema.get("uniqueItems"):
            values = _made_unique(values)
        return values

    def string(self, schema: dict, name: str) -> str:
        lowered = name.lower()
        if schema.get("format") in _FORMATS:
            text = _FORMATS[schema["format"]]
        elif any(word in lowered for word in _PLACE_NAMES):
            text = place_in(self.hint) or "Paris"
        elif lowered in _FREE_TEXT_NAMES or lowered.endswith("_query"):
            text = self.hint[:200] or "hello"
        elif lowered in _BY_NAME:
            text = _BY_NAME[lowered]
        elif lowered.endswith("id"):
            text = "demo-1"
        else:
            text = f"demo {name.replace('_', ' ')}".strip()
        minimum, maximum = schema.get("minLength"), schema.get("maxLength")
        if isinstance(minimum, int) and len(text) < minimum:
            text = text + "x" * (minimum - len(text))
        if isinstance(maximum, int) and len(text) > maximum:
            text = text[:maximum]
        return text


def _is_null(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "null"


def _type_of(schema: dict) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        return kinds[0] if kinds else "null"
    if isinstance(kind, str):
        return kind
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return "string"


def _merged(schema: dict) -> dict:
    """allOf as one schema: properties and required lists joined, other keywords taken from the last part."""
    merged: dict = {key: value for key, value in schema.items() if key != "allOf"}
    properties, required = dict(merged.get("properties") or {}), list(merged.get("required") or [])
    for part in schema["allOf"]:
        if not isinstance(part, dict):
            continue
        properties.update(part.get("properties") or {})
        required += [key for key in part.get("required") or [] if key not in required]
        merged.update({key: value for key, value in part.items() if key not in ("properties", "required")})
    if properties:
        merged["properties"] = properties
    if required:
        merged["required"] = required
    return merged


def _bounded_number(schema: dict, *, integer: bool) -> int | float:
    low, high = schema.get("minimum"), schema.get("maximum")
    exclusive_low, exclusive_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    step = 1 if integer else 0.5
    if isinstance(exclusive_low, (int, float)) and not isinstance(exclusive_low, bool):
        low = exclusive_low + step if low is None else max(low, exclusive_low + step)
    if isinstance(exclusive_high, (int, float)) and not isinstance(exclusive_high, bool):
        high = exclusive_high - step if high is None else min(high, exclusive_high - step)
    value = low if low is not None else (min(1, high) if high is not None else 1)
    multiple = schema.get("multipleOf")
    if isinstance(multiple, (int, float)) and multiple > 0:
        value = -(-value // multiple) * multiple  # the first multiple at or above the lower bound
    if integer:
        return int(-(-value // 1))
    return float(value)


def _made_unique(values: list) -> list:
    """Distinct values for uniqueItems: strings get a counter, numbers the next one up."""
    unique: list = []
    for index, value in enumerate(values):
        if value in unique and isinstance(value, str):
            value = f"{value} {index + 1}"
        elif value in unique and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = max(unique) + 1
        unique.append(value)
    return unique
