"""The checks a cascade step's answer must pass before it is final (routing/engine/cascade.py runs them).

Pure but for `webhook`, which POSTs {"request", "answer"} to the operator's verifier through the shared client.
A check that cannot decide (a verifier that fails, is slow or answers garbage; a regex that runs too long; no
logprobs to read) FAILS: the climb goes on to the next step, which costs money but never a wrong answer or a 500.

`json` validates against the request's `response_format` json_schema with a small bounded validator (jsonschema
is not a dependency): type, enum, const, properties, required, additionalProperties, items, minItems, maxItems,
minLength, maxLength, minimum, maximum, anyOf, allOf. Other keywords are not checked.
"""

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import regex

from core.values import CheckSpec

DEFAULT_REFUSAL_PHRASES = (
    "I'm sorry, but I can't",
    "I'm sorry, but I cannot",
    "I am sorry, but I cannot",
    "I can't help with",
    "I cannot help with",
    "I can't assist with",
    "I cannot assist with",
    "I'm unable to help",
    "I am unable to help",
    "I can't comply",
    "I cannot comply",
    "As an AI language model",
)
MAX_CHECKED_CHARS = 200_000  # of an answer; past this a regex or a phrase search would cost more than a step
REGEX_TIMEOUT_S = 0.05  # a pattern that backtracks longer than this fails the check
MAX_VERIFIER_BODY_BYTES = 16_384
MAX_SCHEMA_DEPTH = 32
MAX_SCHEMA_STEPS = 20_000  # nodes visited while validating one answer
MAX_DETAIL_CHARS = 120


@dataclass(slots=True)
class Answer:
    """What a step answered, as the checks read it."""

    text: str  # the first choice's content (tool-call arguments appended)
    finish_reason: str | None
    logprobs: list[float] | None = None  # per output token, when the provider returned them
    refusal: str | None = None  # OpenAI's message.refusal
    error: str = ""  # a held stream that broke off: never final, whatever the checks say
    too_long: str = ""  # a held stream cut off at the hold cap: unchecked, incomplete, never final


@dataclass(frozen=True, slots=True)
class Outcome:
    type: str
    ok: bool
    detail: str = ""


@dataclass(slots=True)
class CheckContext:
    """What the checks need from the call: the request body and, for webhooks, the shared client and the
    platform's rule for which addresses a verifier may be at (routing/ssrf.py, checked off the event loop)."""

    request: dict[str, Any]
    client: httpx.AsyncClient | None = None
    why_url_refused: Callable[[str], Awaitable[str | None]] | None = None  # -> why not, or None


def answer_of_completion(body: dict[str, Any]) -> Answer:
    choice = (body.get("choices") or [{}])[0] or {}
    message = choice.get("message") or {}
    parts = [message.get("content") or ""]
    for call in message.get("tool_calls") or ():
        parts.append(((call or {}).get("function") or {}).get("arguments") or "")
    return Answer(
        text="".join(p for p in parts if isinstance(p, str)),
        finish_reason=choice.get("finish_reason"),
        logprobs=_token_logprobs(choice.get("logprobs")),
        refusal=message.get("refusal") if isinstance(message.get("refusal"), str) else None,
    )


def answer_of_chunks(chunks: list[dict[str, Any]]) -> Answer:
    """A held stream's chunks, put together as the client would."""
    text: list[str] = []
    finish_reason = None
    logprobs: list[float] | None = None
    refusal: list[str] = []
    for chunk in chunks:
        for choice in chunk.get("choices") or ():
            if (choice or {}).get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                text.append(delta["content"])
            if isinstance(delta.get("refusal"), str):
                refusal.append(delta["refusal"])
            for call in delta.get("tool_calls") or ():
                arguments = ((call or {}).get("function") or {}).get("arguments")
                if isinstance(arguments, str):
                    text.append(arguments)
            values = _token_logprobs(choice.get("logprobs"))
            if values is not None:
                logprobs = (logprobs or []) + values
            finish_reason = choice.get("finish_reason") or finish_reason
    return Answer(text="".join(text), finish_reason=finish_reason, logprobs=logprobs, refusal="".join(refusal) or None)


def _token_logprobs(logprobs: object) -> list[float] | None:
    if not isinstance(logprobs, dict) or not isinstance(logprobs.get("content"), list):
        return None
    values = [t.get("logprob") for t in logprobs["content"] if isinstance(t, dict)]
    return [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]


async def run_checks(specs: tuple[CheckSpec, ...], answer: Answer, context: CheckContext) -> list[Outcome]:
    """Every check's outcome, in order. Cheap checks first; the webhook is called only when they all passed (a
    verifier is paid for its time too, and one failure already escalates)."""
    outcomes = [_run_local(spec, answer, context) for spec in specs if spec.type != "webhook"]
    for spec in specs:
        if spec.type != "webhook":
            continue
        if any(not o.ok for o in outcomes):
            outcomes.append(Outcome("webhook", False, "not called: an earlier check failed"))
            continue
        outcomes.append(await webhook(spec, answer, context))
    return outcomes


def _run_local(spec: CheckSpec, answer: Answer, context: CheckContext) -> Outcome:
    text = answer.text[:MAX_CHECKED_CHARS]
    if spec.type == "not-empty":
        return Outcome(spec.type, bool(text.strip()), "" if text.strip() else "empty answer")
    if spec.type == "not-truncated":
        truncated = answer.finish_reason == "length"
        return Outcome(spec.type, not truncated, "finish_reason length" if truncated else "")
    if spec.type == "json":
        return json_check(text, context.request)
    if spec.type == "refusal":
        return refusal_check(answer, spec.phrases or DEFAULT_REFUSAL_PHRASES)
    if spec.type == "regex":
        return regex_check(text, spec.pattern)
    if spec.type == "min-logprob":
        return logprob_check(answer, spec.threshold)
    return Outcome(spec.type, False, "unknown check")  # the parser admits none; fail safe should one slip by


def refusal_check(answer: Answer, phrases: tuple[str, ...]) -> Outcome:
    if answer.refusal:
        return Outcome("refusal", False, "the provider flagged a refusal")
    folded = answer.text[:MAX_CHECKED_CHARS].casefold()
    for phrase in phrases:
        if phrase.casefold() in folded:
            return Outcome("refusal", False, _clip(f"says {phrase!r}"))
    return Outcome("refusal", True)


def regex_check(text: str, pattern: str) -> Outcome:
    try:
        matched = regex.search(pattern, text.strip(), timeout=REGEX_TIMEOUT_S)
    except TimeoutError:
        return Outcome("regex", False, "pattern timed out")
    except (regex.error, RecursionError):
        return Outcome("regex", False, "pattern does not compile")
    return Outcome("regex", matched is not None, "" if matched else "no match")


def logprob_check(answer: Answer, threshold: float | None) -> Outcome:
    # No logprobs to read (the provider returns none, or the client did not ask for them): unverified, so failed.
    if not answer.logprobs:
        return Outcome("min-logprob", False, "no logprobs returned")
    finite = [v for v in answer.logprobs if math.isfinite(v)]
    mean = sum(finite) / len(finite) if finite else -math.inf
    ok = threshold is not None and mean >= threshold
    return Outcome("min-logprob", ok, f"mean {mean:.3f}" if math.isfinite(mean) else "mean -inf")


def json_check(text: str, request: dict[str, Any]) -> Outcome:
    stripped = text.strip()
    # Models often fence JSON in markdown; the fence is not the answer's fault.
    fenced = regex.fullmatch(r"```(?:json)?\s*(.*?)\s*```", stripped, regex.S)
    try:
        value = orjson.loads(fenced[1] if fenced else stripped)
    except orjson.JSONDecodeError:
        return Outcome("json", False, "not valid JSON")
    schema = _schema_of(request)
    if schema is None:
        return Outcome("json", True)
    problem = SchemaValidator().validate(value, schema)
    return Outcome("json", problem is None, _clip(problem or ""))


def _schema_of(request: dict[str, Any]) -> dict | None:
    response_format = request.get("response_format")
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    schema = (response_format.get("json_schema") or {}).get("schema")
    return schema if isinstance(schema, dict) else None


_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool) or isinstance(v, float) and v.is_integer(),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


class SchemaValidator:
    """The common JSON-schema keywords, bounded in depth and steps: a hostile schema costs at most MAX_SCHEMA_STEPS."""

    def __init__(self) -> None:
        self.steps = 0

    def validate(self, value: Any, schema: Any, path: str = "$", depth: int = 0) -> str | None:
        self.steps += 1
        if depth > MAX_SCHEMA_DEPTH or self.steps > MAX_SCHEMA_STEPS:
            return "schema too deep or too large to check"
        if schema is True or not isinstance(schema, dict):
            return None
        if schema is False:
            return f"{path}: not allowed"
        kind = schema.get("type")
        kinds = kind if isinstance(kind, list) else [kind] if isinstance(kind, str) else []
        if kinds and not any(_TYPES.get(k, lambda v: True)(value) for k in kinds):
            return f"{path}: must be {'/'.join(map(str, kinds))}"
        if "enum" in schema and isinstance(schema["enum"], list) and value not in schema["enum"]:
            return f"{path}: not one of the enum"
        if "const" in schema and value != schema["const"]:
            return f"{path}: not the const"
        for keyword in ("allOf", "anyOf"):
            branches = schema.get(keyword)
            if isinstance(branches, list) and branches:
                problems = [self.validate(value, b, path, depth + 1) for b in branches[:50]]
                failed = [p for p in problems if p]
                if keyword == "allOf" and failed:
                    return failed[0]
                if keyword == "anyOf" and len(failed) == len(problems):
                    return f"{path}: matches none of anyOf"
        if isinstance(value, dict):
            return self._object(value, schema, path, depth)
        if isinstance(value, list):
            return self._array(value, schema, path, depth)
        if isinstance(value, str):
            if isinstance(schema.get("minLength"), int) and len(value) < schema["minLength"]:
                return f"{path}: shorter than {schema['minLength']}"
            if isinstance(schema.get("maxLength"), int) and len(value) > schema["maxLength"]:
                return f"{path}: longer than {schema['maxLength']}"
        elif _TYPES["number"](value):
            low, high = schema.get("minimum"), schema.get("maximum")
            if _TYPES["number"](low) and value < low:
                return f"{path}: below {low}"
            if _TYPES["number"](high) and value > high:
                return f"{path}: above {high}"
        return None

    def _object(self, value: dict, schema: dict, path: str, depth: int) -> str | None:
        required = schema.get("required")
        for name in required if isinstance(required, list) else ():
            if name not in value:
                return f"{path}: missing {name!r}"
        properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                problem = self.validate(item, properties[name], f"{path}.{name}", depth + 1)
            elif extra is False:
                problem = f"{path}: unexpected {name!r}"
            else:
                problem = self.validate(item, extra, f"{path}.{name}", depth + 1)
            if problem:
                return problem
        return None

    def _array(self, value: list, schema: dict, path: str, depth: int) -> str | None:
        if isinstance(schema.get("minItems"), int) and len(value) < schema["minItems"]:
            return f"{path}: fewer than {schema['minItems']} items"
        if isinstance(schema.get("maxItems"), int) and len(value) > schema["maxItems"]:
            return f"{path}: more than {schema['maxItems']} items"
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                if problem := self.validate(item, items, f"{path}[{index}]", depth + 1):
                    return problem
        return None


async def webhook(spec: CheckSpec, answer: Answer, context: CheckContext) -> Outcome:
    """POST {"request", "answer"} to the verifier; it answers {"pass": true|false} or {"score": x}. Anything else,
    an error status, a refused address or no answer within timeout_ms is a failed check."""
    if context.client is None:
        return Outcome("webhook", False, "no HTTP client")
    if context.why_url_refused is not None:
        why_not = await context.why_url_refused(spec.url)
        if why_not:
            return Outcome("webhook", False, _clip(f"refused: {why_not}"))
    timeout_s = spec.timeout_ms / 1000
    content = orjson.dumps({"request": context.request, "answer": answer.text}, option=orjson.OPT_NON_STR_KEYS)
    try:
        # wait_for bounds the whole exchange: httpx's timeouts are per read, and a verifier may trickle.
        raw = await asyncio.wait_for(_post(context.client, spec.url, content, timeout_s), timeout_s)
    except TimeoutError:
        return Outcome("webhook", False, f"no answer within {spec.timeout_ms} ms")
    except httpx.HTTPError as exc:
        return Outcome("webhook", False, f"unreachable ({type(exc).__name__})")
    except _VerifierRefused as exc:
        return Outcome("webhook", False, str(exc))
    return verdict(raw, pass_score=spec.pass_score)


class _VerifierRefused(Exception):
    pass


async def _post(client: httpx.AsyncClient, url: str, content: bytes, timeout_s: float) -> bytes:
    headers = {"content-type": "application/json", "user-agent": "tollway-cascade-check"}
    request = client.build_request("POST", url, content=content, headers=headers, timeout=httpx.Timeout(timeout_s))
    response = await client.send(request, stream=True, follow_redirects=False)
    try:
        if response.status_code != 200:
            raise _VerifierRefused(f"verifier answered {response.status_code}")
        body = b""
        async for piece in response.aiter_bytes():
            body += piece
            if len(body) > MAX_VERIFIER_BODY_BYTES:
                raise _VerifierRefused("verifier answer too large")
        return body
    finally:
        await response.aclose()


def verdict(raw: bytes, *, pass_score: float) -> Outcome:
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Outcome("webhook", False, "verifier answer is not JSON")
    if isinstance(payload, dict) and isinstance(payload.get("pass"), bool):
        return Outcome("webhook", payload["pass"], "" if payload["pass"] else "verifier said fail")
    score = payload.get("score") if isinstance(payload, dict) else None
    if isinstance(score, int | float) and not isinstance(score, bool) and math.isfinite(score):
        return Outcome("webhook", score >= pass_score, f"score {score:.3g} vs {pass_score:g}")
    return Outcome("webhook", False, 'verifier answer has no "pass" or "score"')


def _clip(text: str) -> str:
    return text[:MAX_DETAIL_CHARS]
