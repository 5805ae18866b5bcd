"""`POST /v1/prompts/{slug}[@{version}]/completions` between the view and the pipeline: which template, which
version, the chat request it renders to, and its output checked against the template's schema.

prepare()        the caller may use the template (its team's, a shared one of its tenant, or one a product
                 its team subscribes to bundles), the version (named, or drawn from the environment's split),
                 the body (variables, overrides) -> the chat body the pipeline routes like /v1/chat/completions
PromptCall.parsed()       a non-streamed answer, parsed and validated (422 output_schema_mismatch otherwise)
PromptCall.check_stream() a streamed answer's whole text, checked before the end: a final SSE error event

Another tenant's template, and one of another team that is neither shared nor bundled, answer 404 like one
that does not exist: a caller learns nothing of prompts it may not call.
"""

from dataclasses import dataclass
from typing import Any

import orjson
from django.db import DatabaseError

from core import prompts as templates
from core.bounds import clip
from core.errors import (
    InvalidRequest,
    OutputSchemaMismatch,
    PromptNotFound,
    PromptNotPublished,
    PromptsUnavailable,
    UpstreamError,
)
from core.prompts import FrozenVersion, PromptError, PublishedPrompt
from core.values import Principal
from routing.control_plane import prompt_versions, snapshot
from routing.engine.checks import SchemaValidator
from routing.proxy import validation
from routing.proxy.pipeline import Call

# What a body may carry beside the template's overridable parameters (core/prompts.PARAMETERS).
CALL_FIELDS = frozenset({"variables", "stream", "stream_options", "environment", "version", "user"})
DEFAULT_ENVIRONMENT = "prod"
MAX_USER_CHARS = 256


@dataclass(frozen=True)
class PromptCall:
    prompt: PublishedPrompt
    version: FrozenVersion
    chat_body: dict[str, Any]
    is_stream: bool
    include_usage: bool

    def parsed(self, answer: dict[str, Any]) -> dict[str, Any]:
        """The completion with `choices[i].message.parsed`, when the template has an output schema."""
        if self.version.output_schema is None:
            return answer
        for choice in answer.get("choices") or ():
            message = (choice or {}).get("message") or {}
            text = message.get("content") or ""
            value, problem = self._check(text)
            if problem is not None:
                raise OutputSchemaMismatch(problem, raw_output=text)
            message["parsed"] = value
        return answer

    def check_stream(self, text: str) -> UpstreamError | None:
        """A streamed answer's whole text: its problem, sent as the stream's last event (the text is out)."""
        if self.version.output_schema is None:
            return None
        _value, problem = self._check(text)
        if problem is None:
            return None
        return UpstreamError(problem, error_type=OutputSchemaMismatch.type, code=OutputSchemaMismatch.code)

    def _check(self, text: str) -> tuple[Any, str | None]:
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            return None, clip(f"The answer is not JSON ({exc.args[0]}), so it cannot match the output schema.", 500)
        problem = SchemaValidator().validate(value, self.version.output_schema)
        if problem is not None:
            return None, clip(f"The answer does not match the output schema: {problem}", 500)
        return value, None


def split_reference(reference: str) -> tuple[str, int | None]:
    """`slug` or `slug@3`, from the path."""
    slug, at, number = reference.partition("@")
    if not at:
        return slug, None
    if not number.isdigit() or len(number) > 9 or int(number) < 1:
        raise InvalidRequest("The version after '@' must be a positive integer.", param="version")
    return slug, int(number)


def find(principal: Principal, slug: str) -> tuple[PublishedPrompt, int | None]:
    """The template this key may call by this slug, and the subscription that grants it when a product does."""
    catalogue = snapshot.prompts()
    slug = slug.lower()
    own = catalogue.by_slug.get((principal.tenant_id, slug))
    if own is not None and (own.team_id == principal.team_id or own.is_shared):
        return own, None
    for subscription_id, _aliases in principal.grants:
        product_id = catalogue.bundling_subscriptions.get(subscription_id)
        bundled = catalogue.by_product.get((product_id, slug)) if product_id is not None else None
        if bundled is not None:
            return bundled, subscription_id
    raise PromptNotFound(f"No prompt '{clip(slug, 100)}' that this key may call.")


async def prepare(call: Call, reference: str, body: Any) -> PromptCall:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    if isinstance(body.get("stream"), bool):
        call.usage.stream = body["stream"]
    slug, path_version = split_reference(reference)
    prompt, granted_by = find(call.principal, slug)
    call.usage.prompt, call.granted_by = prompt.slug, granted_by
    version = await _version(call, prompt, path_version, body)
    call.usage.prompt_version = version.number
    call.usage.alias = version.alias
    chat_body = _chat_body(prompt, version, body)
    validation.check_chat(chat_body)  # overrides within their ranges, as on /v1/chat/completions
    return PromptCall(
        prompt=prompt,
        version=version,
        chat_body=chat_body,
        is_stream=bool(body.get("stream")),
        include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
    )


async def _version(call: Call, prompt: PublishedPrompt, path_version: int | None, body: dict) -> FrozenVersion:
    number = path_version
    if "version" in body and body["version"] is not None:
        named = body["version"]
        if isinstance(named, bool) or not isinstance(named, int) or not 1 <= named <= 10**9:
            raise InvalidRequest("'version' must be a positive integer.", param="version")
        if path_version is not None and named != path_version:
            raise InvalidRequest("The path and the body name different versions.", param="version")
        number = named
    if number is None:
        number = _drawn(call.principal, prompt, body)
    try:
        version = await prompt_versions.version_of(prompt, number)
    except DatabaseError:
        raise PromptsUnavailable("The prompt's version cannot be read right now; retry shortly.") from None
    if version is None:
        raise InvalidRequest(
            f"{prompt.slug} has no version {number}.", param="version", code="prompt_version_not_found"
        )
    return version


def _drawn(principal: Principal, prompt: PublishedPrompt, body: dict) -> int:
    """The version the environment serves; drawn from its split (the same one per `user` when one is given)."""
    environment = body.get("environment", DEFAULT_ENVIRONMENT)
    if environment is None:
        environment = DEFAULT_ENVIRONMENT
    if not isinstance(environment, str) or environment not in snapshot.prompts().environments_of(prompt.tenant_id):
        known = ", ".join(sorted(snapshot.prompts().environments_of(prompt.tenant_id)))
        raise InvalidRequest(
            f"Unknown environment '{clip(str(environment), 32)}': one of {known}.", param="environment"
        )
    split = prompt.splits.get(environment)
    if not split:
        raise PromptNotPublished(f"{prompt.slug} has no version published in {environment}.")
    user = body.get("user")
    if isinstance(user, str) and user:
        rng = templates.sticky_draw(slug=prompt.slug, user=user[:MAX_USER_CHARS])
        return templates.pick_version(split, rng=rng)
    return templates.pick_version(split)


def _chat_body(prompt: PublishedPrompt, version: FrozenVersion, body: dict) -> dict[str, Any]:
    overrides = {}
    for name, value in body.items():
        if name in CALL_FIELDS:
            continue
        shown = clip(str(name), 64)
        if name not in templates.PARAMETERS:
            raise InvalidRequest(f"Unknown field '{shown}' for a prompt call.", param=shown, code="unknown_parameter")
        if name in version.locked:
            raise InvalidRequest(f"'{name}' is locked by the prompt template.", param=name, code="parameter_locked")
        kinds = templates.PARAMETERS[name]
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            raise InvalidRequest(f"'{name}' has the wrong type.", param=name)
        overrides[name] = value
    try:
        messages = templates.render(list(version.messages), version.specs, body.get("variables"))
    except PromptError as exc:
        raise InvalidRequest(exc.message, param=exc.param) from None
    chat_body: dict[str, Any] = {"model": version.alias, "messages": messages, **version.parameters, **overrides}
    if version.output_schema is not None and "response_format" not in chat_body:
        chat_body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": prompt.slug.replace("-", "_")[:64], "schema": version.output_schema},
        }
    for name in ("stream", "stream_options", "user"):
        if body.get(name) is not None:
            chat_body[name] = body[name]
    return chat_body
