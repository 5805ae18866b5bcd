"""A hand-written corpus of hostile bodies, sent to every /v1 endpoint of the real ASGI app (uvicorn, lifespan on,
a loopback OpenAI upstream), with the key's team under a TPM limit and a budget so admission counts every prompt.

The stage fails on any 5xx, on an error that is not JSON or not in the endpoint's style (Anthropic on
/v1/messages*, OpenAI elsewhere), on an authenticated request that does not leave exactly one usage record,
and on a gateway that no longer answers a normal call and /healthz afterwards.
"""

import gzip
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import httpx
import orjson
import pytest
from django.conf import settings

from billing.models import Budget
from portal import services
from tests.gateway import start_gateway, wait_for_usage

pytestmark = pytest.mark.django_db(transaction=True)

DEPTH = settings.TOLLWAY_MAX_JSON_DEPTH
MAX_BODY = settings.TOLLWAY_MAX_BODY_BYTES
PROSE = "The quick brown fox jumps over the lazy dog, again and again. "

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
EMBEDDINGS = {"model": "embed", "input": "Hi"}
MESSAGES = {"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "Hi"}]}
RESPONSES = {"model": "gpt-4o-mini", "input": [{"role": "user", "content": "Hi"}]}
BASE_BODY = {
    "/v1/chat/completions": CHAT,
    "/v1/embeddings": EMBEDDINGS,
    "/v1/messages": MESSAGES,
    "/v1/messages/count_tokens": MESSAGES,
    "/v1/responses": RESPONSES,
    "/v1/models": {},
    "/v1/models/gpt-4o-mini": {},
}
GET_PATHS = {"/v1/models", "/v1/models/gpt-4o-mini"}


def nest(depth: int) -> bytes:
    """`depth` nested lists, as JSON text (orjson would not encode past 254)."""
    return b"[" * depth + b"0" + b"]" * depth


def json_bytes(body) -> bytes:
    return orjson.dumps(body)


@dataclass
class Case:
    name: str
    # The base body of the endpoint in, the raw bytes to send out.
    make: Callable[[dict], bytes]
    headers: dict[str, str] = field(default_factory=dict)


def with_fields(**fields) -> Callable[[dict], bytes]:
    return lambda base: json_bytes({**base, **fields})


def with_raw(name: str, value: bytes) -> Callable[[dict], bytes]:
    """The field `name` set to raw JSON text."""

    def make(base: dict) -> bytes:
        rest = json_bytes({k: v for k, v in base.items() if k != name})
        return b'{"' + name.encode() + b'":' + value + (b"," + rest[1:] if rest != b"{}" else b"}")

    return make


def in_every_text(value: str, *, model_too: bool = False) -> Callable[[dict], bytes]:
    """The value in every free-text field of the endpoint's body (and in `model` if asked)."""

    def make(base: dict) -> bytes:
        body = dict(base)
        if "messages" in body:
            body["messages"] = [{"role": "user", "content": value}]
        if "input" in body:
            body["input"] = value
        if body:
            body.update(user=value, system=value, metadata={"user_id": value})
        if model_too:
            body["model"] = value
        return json_bytes(body)

    return make


def in_the_prompt(value: str) -> Callable[[dict], bytes]:
    def make(base: dict) -> bytes:
        if "messages" in base:
            return json_bytes({**base, "messages": [{"role": "user", "content": value}]})
        return json_bytes({**base, "input": value})

    return make


def gzip_bomb() -> bytes:
    return gzip.compress(b"{" + b" " * (MAX_BODY * 4) + b"}", compresslevel=9)


def raw(data: bytes) -> Callable[[dict], bytes]:
    return lambda base: data


CASES = [
    # Nesting: at the limit, past it, at and past orjson's own limits (254 to encode, 1024 to parse).
    Case("metadata nested at the depth limit", with_raw("metadata", nest(DEPTH - 1))),
    Case("metadata nested one past the limit", with_raw("metadata", nest(DEPTH))),
    Case("metadata nested 254 deep", with_raw("metadata", nest(254))),
    Case("metadata nested 600 deep", with_raw("metadata", nest(600))),
    Case("metadata nested 1,023 deep", raw(b'{"model":"gpt-4o-mini","metadata":' + b"[" * 1023 + b"]" * 1023 + b"}")),
    Case("metadata nested 5,000 deep", raw(b'{"model":"gpt-4o-mini","metadata":' + b"[" * 5000 + b"]" * 5000 + b"}")),
    Case("a body that is only brackets", raw(b"[" * 100_000)),
    Case(
        "an Anthropic tool whose input_schema is 600 deep",
        with_raw("tools", b'[{"name":"t","input_schema":{"type":"object","properties":' + nest(600) + b"}}]"),
    ),
    Case(
        "an OpenAI tool whose parameters are 600 deep",
        with_raw("tools", b'[{"type":"function","function":{"name":"t","parameters":{"p":' + nest(600) + b"}}}]"),
    ),
    # Sizes.
    Case(
        "a body of exactly the limit",
        lambda base: json_bytes(base)[:-1] + b" " * (MAX_BODY - len(json_bytes(base))) + b"}",
    ),
    Case(
        "a body one byte past the limit",
        lambda base: json_bytes(base)[:-1] + b" " * (MAX_BODY + 1 - len(json_bytes(base))) + b"}",
    ),
    Case("1.5 MB of prose", in_the_prompt(PROSE * 24_000)),
    Case("5 MB of prose", in_the_prompt(PROSE * 80_000)),
    Case("1 MB of prose in every text field", in_every_text(PROSE * 16_000)),
    Case(
        "10 MB of prose: 5 MB in one message, 5 MB in input",
        lambda base: json_bytes(
            {**base, "messages": [{"role": "user", "content": PROSE * 80_000}], "input": PROSE * 80_000}
        ),
    ),
    Case("a million-character input list item", lambda base: json_bytes({**base, "input": ["x" * 1_000_000]})),
    Case("a huge array of numbers", with_fields(metadata=list(range(500_000)))),
    Case(
        "a huge array of messages",
        lambda base: json_bytes({**base, "messages": [{"role": "user", "content": "a"}] * 50_000}),
    ),
    Case("a huge array of empty objects", with_fields(metadata=[{}] * 300_000)),
    # Encodings.
    Case("gzip", lambda base: gzip.compress(json_bytes(base)), {"content-encoding": "gzip"}),
    Case("gzip bomb", raw(gzip_bomb()), {"content-encoding": "gzip"}),
    Case("gzip twice", lambda base: gzip.compress(gzip.compress(json_bytes(base))), {"content-encoding": "gzip, gzip"}),
    Case("deflate", lambda base: zlib.compress(json_bytes(base)), {"content-encoding": "deflate"}),
    Case("raw deflate", lambda base: zlib.compress(json_bytes(base), wbits=-15), {"content-encoding": "deflate"}),
    Case("gzip header on plain JSON", json_bytes, {"content-encoding": "gzip"}),
    Case("truncated gzip", lambda base: gzip.compress(json_bytes(base))[:-12], {"content-encoding": "gzip"}),
    Case("gzip sent without saying so", lambda base: gzip.compress(json_bytes(base))),
    Case("br", json_bytes, {"content-encoding": "br"}),
    Case("a bogus encoding", json_bytes, {"content-encoding": "x-" + "bogus" * 200}),
    # Wrong types in every field.
    Case("model is a number", with_fields(model=1)),
    Case("model is null", with_fields(model=None)),
    Case("model is an object", with_fields(model={"id": "gpt-4o-mini"})),
    Case("model is empty", with_fields(model="")),
    Case("messages is a string", with_fields(messages="Hi")),
    Case("messages is an object", with_fields(messages={"role": "user", "content": "Hi"})),
    Case("messages holds numbers", with_fields(messages=[1, 2])),
    Case("a message role is a number", with_fields(messages=[{"role": 1, "content": "Hi"}])),
    Case("a message content is a number", with_fields(messages=[{"role": "user", "content": 5}])),
    Case(
        "content parts of every wrong type",
        with_fields(messages=[{"role": "user", "content": [1, None, "x", {"type": 5}, {"type": "text", "text": 5}]}]),
    ),
    Case(
        "Anthropic blocks with wrong sources",
        with_fields(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "source": "http://x"},
                        {"type": "document", "source": 5},
                        {"type": "tool_result", "tool_use_id": 5, "content": 7},
                    ],
                }
            ]
        ),
    ),
    Case(
        "an assistant turn of wrong blocks",
        with_fields(
            messages=[
                {"role": "assistant", "content": [{"type": "tool_use", "input": 5, "name": {}}]},
                {"role": "user", "content": "Hi"},
            ]
        ),
    ),
    Case("max_tokens is a string", with_fields(max_tokens="10")),
    Case("max_tokens is negative", with_fields(max_tokens=-1)),
    Case(
        "max_tokens is 2^63 - 1",
        raw(b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}],"max_tokens":9223372036854775807}'),
    ),
    Case(
        "max_tokens is 2^64",
        raw(b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}],"max_tokens":18446744073709551616}'),
    ),
    Case("max_tokens is a huge integer", raw(b'{"model":"gpt-4o-mini","max_tokens":' + b"9" * 5000 + b"}")),
    Case("max_tokens is 2^31", with_fields(max_tokens=2**31)),
    Case("max_tokens is true", with_fields(max_tokens=True)),
    Case("n is 2^63 - 1", with_fields(n=2**63 - 1)),
    Case("temperature is a string", with_fields(temperature="hot")),
    Case("temperature is 1e308", with_fields(temperature=1e308, top_p=-1e308)),
    Case(
        "temperature is 1e309",
        raw(b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}],"temperature":1e309}'),
    ),
    Case(
        "temperature is -0",
        raw(b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}],"max_tokens":5,"temperature":-0}'),
    ),
    Case("temperature is NaN", raw(b'{"model":"gpt-4o-mini","temperature":NaN}')),
    Case("temperature is Infinity", raw(b'{"model":"gpt-4o-mini","temperature":-Infinity}')),
    Case("stream is a string", with_fields(stream="yes")),
    Case("stream_options is a number", with_fields(stream=True, stream_options=1)),
    Case("tools is a string", with_fields(tools="all")),
    Case("tools holds numbers", with_fields(tools=[1, 2])),
    Case("tool_choice is a string", with_fields(tools=[{"name": "t", "input_schema": {}}], tool_choice="auto")),
    Case("stop is a number", with_fields(stop=5, stop_sequences=5)),
    Case("system is a number", with_fields(system=5)),
    Case("metadata is a string", with_fields(metadata="x", user=5)),
    Case("input is a number", with_fields(input=5)),
    Case("input is an empty list", with_fields(input=[])),
    Case("input holds objects and nulls", with_fields(input=[{}, None])),
    # Strings.
    Case("a 100,000-character model", with_fields(model="m" * 100_000)),
    Case("a 100,000-character string in every field", in_every_text("é" * 100_000, model_too=True)),
    Case("a 100,000-character string in every text field", in_every_text("é" * 100_000)),
    Case("NUL characters in every text field", in_every_text("a\u0000b")),
    Case("a raw NUL byte", lambda base: json_bytes(base)[:-1] + b"\x00}"),
    Case("invalid UTF-8", raw(b'{"model":"gpt-4o-mini\xff\xfe","messages":[]}')),
    Case("a lone surrogate", raw(b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"\\ud800"}]}')),
    Case(
        "a surrogate pair",
        raw(b'{"model":"gpt-4o-mini","max_tokens":5,"messages":[{"role":"user","content":"\\ud83d\\ude00"}]}'),
    ),
    Case("special-token text", in_every_text("<|endoftext|><|im_start|>system")),
    Case(
        "duplicate keys",
        lambda base: json_bytes(base)[:-1] + b',"model":"gpt-4o-mini","model":"nope","model":"gpt-4o-mini"}',
    ),
    Case("a 100,000-character key", lambda base: json_bytes({**base, "k" * 100_000: 1})),
    # Shapes.
    Case("an empty body", raw(b"")),
    Case("whitespace only", raw(b" \n\t ")),
    Case("a JSON array", raw(b'[{"model":"gpt-4o-mini"}]')),
    Case("a JSON number", raw(b"42")),
    Case("a JSON string", raw(b'"gpt-4o-mini"')),
    Case("JSON null", raw(b"null")),
    Case("two JSON documents", lambda base: json_bytes(base) + json_bytes(base)),
    Case("form-encoded", raw(b"model=gpt-4o-mini&messages=hi"), {"content-type": "application/x-www-form-urlencoded"}),
    Case("multipart", raw(b"--x\r\n\r\nhi\r\n--x--"), {"content-type": "multipart/form-data; boundary=x"}),
    Case("text/plain JSON", json_bytes, {"content-type": "text/plain"}),
    Case("a streamed call", with_fields(stream=True, max_tokens=5)),
    Case("a streamed call with a huge model", with_fields(stream=True, model="m" * 100_000)),
]

HOSTILE_MODEL_IDS = ["m" * 8000, "%00", "%FF%FE", "a/b/../../c", "%F0%9F%98%80", "gpt-4o-mini%00"]


def is_openai_error(payload) -> bool:
    error = payload.get("error") if isinstance(payload, dict) else None
    return isinstance(error, dict) and set(error) == {"message", "type", "param", "code"} and bool(error["message"])


def is_anthropic_error(payload) -> bool:
    error = payload.get("error") if isinstance(payload, dict) else None
    return (
        isinstance(payload, dict)
        and payload.get("type") == "error"
        and isinstance(error, dict)
        and set(error) == {"type", "message"}
        and bool(error["message"])
    )


def problems_with(path: str, response: httpx.Response) -> list[str]:
    problems = []
    if response.status_code >= 500:
        problems.append(f"HTTP {response.status_code}")
    if response.status_code == 200 and response.headers.get("content-type", "").startswith("text/event-stream"):
        return problems
    try:
        payload = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return [*problems, f"not JSON: {response.content[:80]!r}"]
    if response.status_code >= 400:
        is_right_style = is_anthropic_error if path.startswith("/v1/messages") else is_openai_error
        if not is_right_style(payload):
            problems.append(f"error in the wrong style: {response.content[:120]!r}")
    if len(response.content) > 4096 and response.status_code >= 400:
        problems.append(f"an error of {len(response.content)} bytes")
    return problems


@pytest.fixture
def limited_key(team, catalogue):
    # A TPM limit and a budget: admission counts the prompt of every call, which is where hostile text hurts.
    Budget.objects.create(
        tenant=team.tenant,
        scope=Budget.Scope.TEAM,
        target_id=team.pk,
        period=Budget.Period.MONTHLY,
        limit_usd=Decimal(10**6),
    )
    return services.issue_api_key(team=team, name="fuzz", tpm_limit=2_000_000_000).secret


def test_no_hostile_body_finds_a_5xx_a_non_json_or_wrongly_styled_error_or_a_lost_usage_record(limited_key):
    failures, request_ids = [], []
    with start_gateway() as gateway, httpx.Client(base_url=gateway.url, timeout=60) as client:
        auth = {"authorization": f"Bearer {limited_key}"}
        sent = 0
        for path, base in BASE_BODY.items():
            method = "GET" if path in GET_PATHS else "POST"
            for case in CASES:
                content = case.make(base)
                headers = {"content-type": "application/json", **auth, **case.headers}
                response = client.request(method, path, content=content, headers=headers)
                sent += 1
                request_ids.append(response.headers.get("x-request-id"))
                failures += [f"{method} {path} [{case.name}]: {p}" for p in problems_with(path, response)]
        for model_id in HOSTILE_MODEL_IDS:
            response = client.get(f"/v1/models/{model_id}", headers=auth)
            sent += 1
            request_ids.append(response.headers.get("x-request-id"))
            failures += [f"GET /v1/models/{model_id[:20]}: {p}" for p in problems_with("/v1/models/x", response)]

        # Still healthy: a normal call answers, and so does the liveness probe.
        normal = client.post("/v1/chat/completions", json=CHAT, headers=auth)
        healthz = client.get("/healthz")
    assert not failures, "\n".join(failures)
    assert normal.status_code == 200, normal.text
    assert healthz.status_code == 200
    assert len(CASES) >= 50

    # Exactly one usage record per authenticated request, the normal call included.
    records = wait_for_usage(sent + 1, timeout_s=30)
    assert sorted(r.request_id for r in records) == sorted([*request_ids, normal.headers["x-request-id"]])
