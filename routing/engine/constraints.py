"""Which of an alias's deployments can take this request at all: what the request needs (tools, vision, json,
embeddings, room in the context window, a region, tags, a quality floor) against what each deployment states,
then its quota and its breaker. Pure: the router passes the quota and breaker checks in.

Every excluded deployment gives one Skip with the first reason that applies, in SKIP_ORDER. The cheap facts of the
request come first; the quota and breaker checks come last and are asked only of deployments that passed the rest,
because a breaker may hand out its half-open probe when asked.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.bounds import MAX_INTEGER, clip
from core.values import Skip, Target

CAPABILITIES = ("tools", "vision", "json", "embeddings")
SKIP_ORDER = ("capability", "context", "region", "tag", "quality", "rpm-limit", "tpm-limit", "breaker-open")
QUOTA_REASONS = ("rpm-limit", "tpm-limit")
_JSON_FORMATS = ("json_object", "json_schema")
# Semantic and learned routing read this much of the prompt, from its end: the question a user asks comes last,
# after any instructions or few-shot examples, and a bounded text keeps the embedding's cost bounded.
ROUTING_TEXT_CHARS = 2000
_IMAGE_PARTS = ("image_url", "input_image")


@dataclass(frozen=True, slots=True)
class Needs:
    """What one request needs of a deployment."""

    capabilities: frozenset[str] = frozenset()  # subset of CAPABILITIES
    prompt_tokens: int = 0  # counted prompt tokens
    output_tokens: int = 0  # requested output (max_tokens / max_completion_tokens), 0 unknown
    allowed_regions: frozenset[str] | None = None  # None: any region
    required_tags: frozenset[str] = frozenset()
    min_quality: float | None = None
    stream: bool = False  # lowest-latency ranks streams by time to first token
    user: str = ""  # the request's `user` (bounded): an experiment's arm sticks to it
    routing_text: str = ""  # the last user message's text (its last ROUTING_TEXT_CHARS): what semantic/learned read


def needs_for(
    body: dict,
    *,
    endpoint: str,
    prompt_tokens: int,
    principal_regions: frozenset[str] | None,
    principal_tags: frozenset[str],
    min_quality: float | None,
) -> Needs:
    """What this request needs. `endpoint` is "chat.completions" (also /v1/messages, once translated to OpenAI
    chat) or "embeddings". The body is the client's: anything of an unexpected shape is ignored, never raised on."""
    if not isinstance(body, dict):
        body = {}
    capabilities = set()
    if endpoint == "embeddings":
        capabilities.add("embeddings")
    if _is_non_empty_list(body.get("tools")) or _is_non_empty_list(body.get("functions")):
        capabilities.add("tools")
    if _has_image(body.get("messages")):
        capabilities.add("vision")
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in _JSON_FORMATS:
        capabilities.add("json")
    return Needs(
        capabilities=frozenset(capabilities),
        prompt_tokens=_bounded_count(prompt_tokens),
        output_tokens=_requested_output(body),
        allowed_regions=principal_regions,
        required_tags=principal_tags,
        min_quality=min_quality,
        stream=body.get("stream") is True,
        user=clip(body["user"], 1000) if isinstance(body.get("user"), str) else "",
        routing_text=routing_text(body.get("messages")),
    )


def routing_text(messages: object) -> str:
    """The text of the last user message (text parts joined by newlines), cut to its last ROUTING_TEXT_CHARS.
    Anything of an unexpected shape gives ""."""
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, list):
            texts = [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
            content = "\n".join(texts)
        return content[-ROUTING_TEXT_CHARS:] if isinstance(content, str) else ""
    return ""


def eligible(
    targets: Sequence[Target],
    needs: Needs,
    *,
    is_open: Callable[[str], bool] = lambda deployment: False,
    over_quota: Callable[[Target], str | None] = lambda target: None,
) -> tuple[list[Target], list[Skip]]:
    """The targets that can take the request, in their given order, and one Skip for each of the others.
    `over_quota` answers "rpm-limit", "tpm-limit" or None; `is_open` whether the deployment's breaker is open."""
    kept: list[Target] = []
    skipped: list[Skip] = []
    for target in targets:
        skip = _first_unmet_need(target, needs)
        if skip is None:
            quota = over_quota(target)
            if quota is not None:
                if quota not in QUOTA_REASONS:
                    raise ValueError(f"over_quota must answer one of {QUOTA_REASONS} or None, not {quota!r}")
                skip = Skip(target.deployment, quota, f"at its {quota.split('-')[0].upper()} quota")
        if skip is None and is_open(target.deployment):
            skip = Skip(target.deployment, "breaker-open", "breaker open")
        if skip is None:
            kept.append(target)
        else:
            skipped.append(skip)
    return kept, skipped


def _first_unmet_need(target: Target, needs: Needs) -> Skip | None:
    name = target.deployment
    # An empty set states nothing (catalogues written before capabilities existed): not a reason to skip.
    if target.capabilities:
        missing = needs.capabilities - target.capabilities
        if missing:
            return Skip(name, "capability", f"lacks {', '.join(sorted(missing))}")
    if target.context_window is not None:
        needed = needs.prompt_tokens + needs.output_tokens
        if needed > target.context_window:
            return Skip(name, "context", f"needs {needed:,} tokens, has {target.context_window:,}")
    # An unknown region is outside every list, even one that somehow lists "": residency must be known to hold.
    if needs.allowed_regions is not None and (not target.region or target.region not in needs.allowed_regions):
        allowed = clip(", ".join(sorted(needs.allowed_regions)) or "no region")
        return Skip(name, "region", f"region {target.region or 'unknown'} not in {allowed}")
    missing_tags = needs.required_tags - target.tags
    if missing_tags:
        noun = "tag" if len(missing_tags) == 1 else "tags"
        return Skip(name, "tag", f"lacks {noun} {', '.join(sorted(missing_tags))}")
    if needs.min_quality is not None:
        if target.quality is None:
            return Skip(name, "quality", f"quality unknown, needs {needs.min_quality:g}")
        if target.quality < needs.min_quality:
            return Skip(name, "quality", f"quality {target.quality:g} below {needs.min_quality:g}")
    return None


def _is_non_empty_list(value: object) -> bool:
    return isinstance(value, list) and len(value) > 0


def _has_image(messages: object) -> bool:
    if not isinstance(messages, list):
        return False
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            if isinstance(part, dict) and part.get("type") in _IMAGE_PARTS:
                return True
    return False


def _requested_output(body: dict) -> int:
    # max_completion_tokens replaces max_tokens in OpenAI's API; a client sending both means the newer one.
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return _bounded_count(value)
    return 0


def _bounded_count(value: object) -> int:
    """A token count as a non-negative int no larger than any counter takes (it reaches Skip.detail)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return 0
    return min(value, MAX_INTEGER)
