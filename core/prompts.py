"""Prompt templates: their typed variables and safe rendering. No Django: the console, the REST API, the
import command and the gateway's /v1/prompts endpoint all render with these functions.

A template is a list of chat messages whose text may name variables as `{{ticker}}`. Rendering substitutes
each value as data, in one pass over the template's own text: a value is never scanned again, so a value that
contains `{{other}}` stays that text; there is no logic, no filter, no attribute access. `{{` followed by
anything but a plain name is refused when the template is saved. A literal `{{` is written `\\{{`.

Variable specs (the REST shape): {"ticker": {"type": "string", "required": true},
"quarter": {"type": "enum", "values": ["Q1", "Q2"], "default": "Q1"}}. Types: string, number, integer,
boolean, enum, json. A variable is required unless it is marked `"required": false` or has a default.

The gateway's view of published templates (PublishedPrompt, FrozenVersion, PromptCatalogue, loaded by
routing/control_plane/loader.py) and the sticky draw of a split's version per caller are here too: Django-free
values the data plane serves from memory.
"""

import hashlib
import json
import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.bounds import clip

VARIABLE_TYPES = ("string", "number", "integer", "boolean", "enum", "json")
ROLES = ("system", "developer", "user", "assistant")

# The chat parameters a template may set as defaults and a caller may override (unless the template locks
# them), with the JSON types each takes.
PARAMETERS = {
    "temperature": (int, float),
    "top_p": (int, float),
    "max_tokens": (int,),
    "max_completion_tokens": (int,),
    "presence_penalty": (int, float),
    "frequency_penalty": (int, float),
    "seed": (int,),
    "stop": (str, list),
    "tools": (list,),
    "tool_choice": (str, dict),
    "parallel_tool_calls": (bool,),
    "response_format": (dict,),
    "logprobs": (bool,),
    "top_logprobs": (int,),
    "reasoning_effort": (str,),
}

MAX_MESSAGES = 100
MAX_MESSAGE_CHARS = 100_000  # one message's template text
MAX_VARIABLES = 100
MAX_ENUM_VALUES = 200
MAX_VALUE_CHARS = 100_000  # one rendered value
MAX_NAME_CHARS = 64
# What one render may produce: a 100 KB value named in every `{{` of a long template would be gigabytes.
MAX_RENDERED_CHARS = 2_000_000

_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
_NAME_RE = re.compile(rf"^{_NAME}$")
# `\{{` is a literal `{{`; `{{ name }}` a variable; any other `{{` is an error (found by _ANY_OPEN_RE).
_TOKEN_RE = re.compile(rf"\\\{{\{{|\{{\{{\s*({_NAME})\s*\}}\}}")
_ANY_OPEN_RE = re.compile(r"\\\{\{|\{\{")


class PromptError(ValueError):
    """A template, a variable spec or a value is not acceptable. `param` names the offending field, in the
    request's terms (`variables.ticker`, `messages[0].content`)."""

    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(clip(message, 500))
        self.message = clip(message, 500)
        self.param = param


@dataclass(frozen=True, slots=True)
class VariableSpec:
    name: str
    type: str
    required: bool
    default: Any = None
    has_default: bool = False
    values: tuple = ()  # an enum's allowed values
    description: str = ""

    def as_dict(self) -> dict:
        spec: dict[str, Any] = {"type": self.type, "required": self.required}
        if self.has_default:
            spec["default"] = self.default
        if self.type == "enum":
            spec["values"] = list(self.values)
        if self.description:
            spec["description"] = self.description
        return spec


# --- the template's text -----------------------------------------------------------------------------------


def variables_in(text: str) -> list[str]:
    """The variable names a text uses, in first-use order."""
    seen: dict[str, None] = {}
    for match in _TOKEN_RE.finditer(text):
        if match.group(1):
            seen.setdefault(match.group(1), None)
    return list(seen)


def variables_in_messages(messages: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for message in messages:
        for name in variables_in(message["content"]):
            seen.setdefault(name, None)
    return list(seen)


def clean_messages(messages: Any, *, param: str = "messages") -> list[dict]:
    """A template's messages, checked: a non-empty list of {role, content} with a known role, string content,
    and no `{{` that is not a plain variable name."""
    if not isinstance(messages, list) or not messages:
        raise PromptError("messages must be a non-empty list of {role, content}", param=param)
    if len(messages) > MAX_MESSAGES:
        raise PromptError(f"a template has at most {MAX_MESSAGES} messages", param=param)
    cleaned = []
    for index, message in enumerate(messages):
        where = f"{param}[{index}]"
        if not isinstance(message, dict):
            raise PromptError("each message must be an object with role and content", param=where)
        unknown = set(message) - {"role", "content"}
        if unknown:
            raise PromptError(f"unknown message field {sorted(unknown)[0]!r}", param=f"{where}.{sorted(unknown)[0]}")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise PromptError(f"role must be one of {', '.join(ROLES)}", param=f"{where}.role")
        if not isinstance(content, str):
            raise PromptError("content must be a string", param=f"{where}.content")
        if len(content) > MAX_MESSAGE_CHARS:
            raise PromptError(f"content is longer than {MAX_MESSAGE_CHARS} characters", param=f"{where}.content")
        _check_placeholders(content, param=f"{where}.content")
        cleaned.append({"role": role, "content": content})
    return cleaned


def _check_placeholders(text: str, *, param: str) -> None:
    valid = {match.start() for match in _TOKEN_RE.finditer(text)}
    for match in _ANY_OPEN_RE.finditer(text):
        if match.start() not in valid:
            fragment = text[match.start() : match.start() + 40]
            raise PromptError(
                f"{fragment!r} is not a variable: write {{{{name}}}} with a plain name (letters, digits, _), "
                "or \\{{ for a literal {{",
                param=param,
            )


# --- variable specs ----------------------------------------------------------------------------------------


def clean_variable_specs(specs: Any, *, used: list[str], param: str = "variables") -> dict[str, VariableSpec]:
    """The template's variable specs, checked against the names its messages use. A name used in the text
    with no spec is a required string; a spec for a name the text does not use is refused (a typo)."""
    if specs is None:
        specs = {}
    if not isinstance(specs, dict):
        raise PromptError("variables must be an object of name -> {type, ...}", param=param)
    if len(specs) > MAX_VARIABLES or len(used) > MAX_VARIABLES:
        raise PromptError(f"a template has at most {MAX_VARIABLES} variables", param=param)
    for name in specs:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise PromptError("a variable name is letters, digits and _, not starting with a digit", param=param)
        if name not in used:
            raise PromptError(f"variable {name!r} is not used in the messages", param=f"{param}.{name}")
    cleaned = {}
    for name in used:
        cleaned[name] = _clean_spec(name, specs.get(name, {"type": "string"}), param=f"{param}.{name}")
    return cleaned


def _clean_spec(name: str, spec: Any, *, param: str) -> VariableSpec:
    if not isinstance(spec, dict):
        raise PromptError("a variable spec is an object with a type", param=param)
    unknown = set(spec) - {"type", "required", "default", "values", "description"}
    if unknown:
        raise PromptError(f"unknown variable field {sorted(unknown)[0]!r}", param=f"{param}.{sorted(unknown)[0]}")
    kind = spec.get("type", "string")
    if kind not in VARIABLE_TYPES:
        raise PromptError(f"type must be one of {', '.join(VARIABLE_TYPES)}", param=f"{param}.type")
    values: tuple = ()
    if kind == "enum":
        raw = spec.get("values")
        if not isinstance(raw, list) or not raw or len(raw) > MAX_ENUM_VALUES:
            raise PromptError(f"an enum needs 1 to {MAX_ENUM_VALUES} values", param=f"{param}.values")
        if not all(isinstance(v, str) and 0 < len(v) <= 200 for v in raw) or len(set(raw)) != len(raw):
            raise PromptError("an enum's values are distinct non-empty strings", param=f"{param}.values")
        values = tuple(raw)
    elif "values" in spec:
        raise PromptError("only an enum has values", param=f"{param}.values")
    description = spec.get("description", "")
    if not isinstance(description, str) or len(description) > 500:
        raise PromptError("description is a string of at most 500 characters", param=f"{param}.description")
    has_default = "default" in spec and spec["default"] is not None
    required = spec.get("required", not has_default)
    if not isinstance(required, bool):
        raise PromptError("required is true or false", param=f"{param}.required")
    draft = VariableSpec(name=name, type=kind, required=required, values=values, description=description)
    if has_default:
        default = coerce_value(draft, spec["default"], param=f"{param}.default")
        return VariableSpec(
            name=name,
            type=kind,
            required=required,
            default=default,
            has_default=True,
            values=values,
            description=description,
        )
    return draft


def specs_as_dict(specs: dict[str, VariableSpec]) -> dict[str, dict]:
    return {name: spec.as_dict() for name, spec in specs.items()}


def specs_from_dict(raw: dict[str, dict]) -> dict[str, VariableSpec]:
    """Specs stored by clean_variable_specs, read back (trusted: they were checked when saved)."""
    return {
        name: VariableSpec(
            name=name,
            type=spec["type"],
            required=spec["required"],
            default=spec.get("default"),
            has_default="default" in spec,
            values=tuple(spec.get("values", ())),
            description=spec.get("description", ""),
        )
        for name, spec in raw.items()
    }


# --- values and rendering ----------------------------------------------------------------------------------


def coerce_value(spec: VariableSpec, value: Any, *, param: str) -> Any:
    """The value as its type, or PromptError. JSON types are strict: "3" is not an integer, 1 is not a bool."""
    kind = spec.type
    if kind == "string":
        if not isinstance(value, str):
            raise PromptError(f"{spec.name} must be a string", param=param)
        if len(value) > MAX_VALUE_CHARS:
            raise PromptError(f"{spec.name} is longer than {MAX_VALUE_CHARS} characters", param=param)
        return value
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 2**53:
            raise PromptError(f"{spec.name} must be an integer", param=param)
        return value
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise PromptError(f"{spec.name} must be a number", param=param)
        if isinstance(value, int) and abs(value) > 2**53:
            raise PromptError(f"{spec.name} is too large", param=param)
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise PromptError(f"{spec.name} must be true or false", param=param)
        return value
    if kind == "enum":
        if value not in spec.values:
            shown = ", ".join(spec.values[:10]) + (", …" if len(spec.values) > 10 else "")
            raise PromptError(f"{spec.name} must be one of {shown}", param=param)
        return value
    # json: any JSON value, rendered as compact JSON text
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise PromptError(f"{spec.name} must be a JSON value", param=param) from exc
    if len(text) > MAX_VALUE_CHARS:
        raise PromptError(f"{spec.name} is longer than {MAX_VALUE_CHARS} characters as JSON", param=param)
    return value


def resolve_values(specs: dict[str, VariableSpec], values: Any, *, param: str = "variables") -> dict[str, Any]:
    """Every variable's value: the given one (typed), else its default; unknown and missing ones refused."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise PromptError("variables must be an object of name -> value", param=param)
    for name in values:
        if name not in specs:
            shown = clip(str(name), 64)
            raise PromptError(f"unknown variable {shown!r}", param=f"{param}.{shown}")
    resolved = {}
    for name, spec in specs.items():
        if name in values and values[name] is not None:
            resolved[name] = coerce_value(spec, values[name], param=f"{param}.{name}")
        elif spec.has_default:
            resolved[name] = spec.default
        elif spec.required:
            raise PromptError(f"variable {name!r} is required", param=f"{param}.{name}")
        else:
            resolved[name] = None
    return resolved


def value_text(spec: VariableSpec, value: Any) -> str:
    if value is None:
        return ""
    if spec.type == "boolean":
        return "true" if value else "false"
    if spec.type == "json":
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def render_text(text: str, specs: dict[str, VariableSpec], values: dict[str, Any]) -> str:
    """One pass over the template's text: substituted values are never read again as template."""

    def substitute(match: re.Match) -> str:
        name = match.group(1)
        if name is None:
            return "{{"  # an escaped literal
        return value_text(specs[name], values[name])

    return _TOKEN_RE.sub(substitute, text)


def rendered_size(messages: list[dict], specs: dict[str, VariableSpec], resolved: dict[str, Any]) -> int:
    """The characters render() would produce, counted without producing them."""
    lengths = {name: len(value_text(spec, resolved[name])) for name, spec in specs.items()}
    size = 0
    for message in messages:
        text = message["content"]
        size += len(text)
        for match in _TOKEN_RE.finditer(text):
            size += (lengths[match.group(1)] if match.group(1) else 2) - len(match.group(0))
    return size


def render(messages: list[dict], specs: dict[str, VariableSpec], values: Any) -> list[dict]:
    """The chat messages for these values (raises PromptError naming `variables.<name>`, or `variables` when
    they would render more than MAX_RENDERED_CHARS)."""
    resolved = resolve_values(specs, values)
    if rendered_size(messages, specs, resolved) > MAX_RENDERED_CHARS:
        raise PromptError(f"these values would render more than {MAX_RENDERED_CHARS:,} characters", param="variables")
    return [{"role": m["role"], "content": render_text(m["content"], specs, resolved)} for m in messages]


def pick_version(split: Mapping[str, int], *, rng: random.Random | None = None) -> int:
    """A version of a publication's split ({"3": 90, "4": 10}), drawn by its percentages."""
    draw = (rng or random).uniform(0, 100)
    running = 0
    for version, weight in split.items():
        running += weight
        if draw < running:
            return int(version)
    return int(next(reversed(split)))


def sticky_draw(*, slug: str, user: str) -> random.Random:
    """The same draw for the same `user` of one template (by slug), in every process and after restarts: a
    split then serves each user one version while it stands, and the shares hold over many users."""
    digest = hashlib.sha256(f"{slug}\n{user}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


# --- what the gateway keeps in memory (routing/control_plane/loader.py loads it) ---------------------------


@dataclass(frozen=True, slots=True)
class FrozenVersion:
    """One immutable version, as the gateway renders and calls it."""

    number: int
    alias: str
    messages: tuple[dict, ...]
    specs: dict[str, VariableSpec]
    parameters: dict
    locked: frozenset[str]
    output_schema: dict | None


@dataclass(frozen=True, slots=True)
class PublishedPrompt:
    """A template as callers reach it: who may, what each environment serves, and those versions' content.
    Versions no environment serves are not here; a call naming one reads it on demand
    (routing/control_plane/prompt_versions.py)."""

    template_id: int
    tenant_id: int
    team_id: int
    slug: str
    is_shared: bool
    is_private: bool
    product_ids: frozenset[int]  # products that bundle it: their subscribers may call it
    splits: dict[str, dict[str, int]]  # environment -> {"3": 90, "4": 10}
    versions: dict[int, FrozenVersion]  # the versions the splits name
    latest_version: int  # the highest version number (0: none yet)


# The environments every tenant has (portal/prompts/models.py says the same for the console).
DEFAULT_ENVIRONMENTS = frozenset({"dev", "staging", "prod"})


@dataclass(frozen=True, slots=True)
class PromptCatalogue:
    by_slug: dict[tuple[int, str], PublishedPrompt] = field(default_factory=dict)  # (tenant id, slug)
    # (product id, slug): what a product bundles; a platform product's subscribers are in any tenant.
    by_product: dict[tuple[int, str], PublishedPrompt] = field(default_factory=dict)
    environments: dict[int, frozenset[str]] = field(default_factory=dict)  # tenant id -> its own, beside defaults
    bundling_products: frozenset[int] = frozenset()  # products that bundle at least one prompt
    # Subscriptions to those products -> the product (other subscriptions never grant a prompt).
    bundling_subscriptions: dict[int, int] = field(default_factory=dict)

    def environments_of(self, tenant_id: int) -> frozenset[str]:
        return DEFAULT_ENVIRONMENTS | self.environments.get(tenant_id, frozenset())
