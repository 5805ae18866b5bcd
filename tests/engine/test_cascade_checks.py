"""The checks a cascade step's answer must pass (routing/engine/checks.py), the webhook's verdicts aside (they go
through a real verifier in tests/routing/test_cascade_sdk.py)."""

import pytest

from core.values import CheckSpec
from routing.engine import checks
from routing.engine.checks import Answer, CheckContext, answer_of_chunks, answer_of_completion

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


def outcome(spec: CheckSpec, answer: Answer, request: dict | None = None) -> checks.Outcome:
    return checks._run_local(spec, answer, CheckContext(request=request or {}))


def said(text: str, finish_reason: str = "stop", **fields) -> Answer:
    return Answer(text=text, finish_reason=finish_reason, **fields)


def test_not_empty_fails_a_blank_answer():
    assert outcome(CheckSpec("not-empty"), said("  \n")).ok is False
    assert outcome(CheckSpec("not-empty"), said("B")).ok is True


def test_not_truncated_fails_an_answer_cut_at_its_length():
    assert outcome(CheckSpec("not-truncated"), said("The answer is", "length")) == checks.Outcome(
        "not-truncated", False, "finish_reason length"
    )
    assert outcome(CheckSpec("not-truncated"), said("The answer is B.")).ok is True


def test_json_must_parse_and_a_fenced_block_counts():
    assert outcome(CheckSpec("json"), said('{"answer": "B"')).ok is False
    assert outcome(CheckSpec("json"), said('```json\n{"answer": "B"}\n```')).ok is True


SCHEMA_REQUEST = {
    "response_format": {
        "type": "json_schema",
        "json_schema": {
            "name": "pick",
            "schema": {
                "type": "object",
                "properties": {
                    "answer": {"type": "string", "enum": ["A", "B", "C", "D"]},
                    "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                    "reasons": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
                },
                "required": ["answer"],
                "additionalProperties": False,
            },
        },
    }
}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"answer": "B", "confidence": 0.9, "reasons": ["x"]}', ""),
        ('{"confidence": 0.9}', "$: missing 'answer'"),
        ('{"answer": "E"}', "$.answer: not one of the enum"),
        ('{"answer": "B", "confidence": 1.5}', "$.confidence: above 1"),
        ('{"answer": "B", "reasons": ["a", "b", "c"]}', "$.reasons: more than 2 items"),
        ('{"answer": "B", "reasons": [1]}', "$.reasons[0]: must be string"),
        ('{"answer": "B", "extra": 1}', "$: unexpected 'extra'"),
        ('["B"]', "$: must be object"),
    ],
)
def test_json_is_validated_against_the_requests_schema(text, problem):
    result = outcome(CheckSpec("json"), said(text), SCHEMA_REQUEST)

    assert (result.ok, result.detail) == (not problem, problem)


def test_a_hostile_schema_is_bounded_and_fails_rather_than_recursing():
    deep: dict = {"type": "object"}
    schema = deep
    for _ in range(100):
        schema["properties"] = {"a": {"type": "object"}}
        schema = schema["properties"]["a"]
    value: dict = {}
    node = value
    for _ in range(100):
        node["a"] = {}
        node = node["a"]
    request = {"response_format": {"type": "json_schema", "json_schema": {"schema": deep}}}

    result = checks.json_check(checks.orjson.dumps(value).decode(), request)

    assert result == checks.Outcome("json", False, "schema too deep or too large to check")


def test_refusal_fails_on_default_and_configured_phrases_and_on_the_providers_flag():
    assert outcome(CheckSpec("refusal"), said("I'm sorry, but I can't help with that.")).ok is False
    assert outcome(CheckSpec("refusal"), said("Sure: B")).ok is True
    assert outcome(CheckSpec("refusal", phrases=("not my job",)), said("That is NOT MY JOB.")).ok is False
    assert outcome(CheckSpec("refusal"), said("", refusal="I can't do that")).ok is False


def test_regex_must_find_a_match_in_the_stripped_answer():
    assert outcome(CheckSpec("regex", pattern="^[A-D]$"), said(" B\n")).ok is True
    assert outcome(CheckSpec("regex", pattern="^[A-D]$"), said("The answer is B")).ok is False


def test_a_catastrophic_pattern_times_out_and_fails_the_check():
    # Nested quantifiers backtrack exponentially on a long run of x without a y.
    result = outcome(CheckSpec("regex", pattern="(x+x+)+y"), said("x" * 5000))

    assert result == checks.Outcome("regex", False, "pattern timed out")


def test_min_logprob_compares_the_mean_and_fails_when_no_logprobs_came_back():
    confident = said("B", logprobs=[-0.01, -0.2])
    unsure = said("B", logprobs=[-2.0, -3.0])

    assert outcome(CheckSpec("min-logprob", threshold=-0.5), confident).ok is True
    assert outcome(CheckSpec("min-logprob", threshold=-0.5), unsure) == checks.Outcome(
        "min-logprob", False, "mean -2.500"
    )
    assert outcome(CheckSpec("min-logprob", threshold=-0.5), said("B")) == checks.Outcome(
        "min-logprob", False, "no logprobs returned"
    )


def test_answers_are_read_from_completions_and_from_held_chunks_alike():
    completion = {
        "choices": [
            {
                "message": {"role": "assistant", "content": "B"},
                "finish_reason": "length",
                "logprobs": {"content": [{"token": "B", "logprob": -0.1}]},
            }
        ]
    }
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {"choices": [{"index": 0, "delta": {"content": "B"}, "logprobs": {"content": [{"logprob": -0.1}]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]},
        {"choices": [], "usage": {"prompt_tokens": 1}},
    ]

    assert answer_of_completion(completion) == answer_of_chunks(chunks) == said("B", "length", logprobs=[-0.1])


@pytest.mark.parametrize(
    ("raw", "ok", "detail"),
    [
        (b'{"pass": true}', True, ""),
        (b'{"pass": false}', False, "verifier said fail"),
        (b'{"score": 0.7}', True, "score 0.7 vs 0.5"),
        (b'{"score": 0.2}', False, "score 0.2 vs 0.5"),
        (b'{"pass": "yes"}', False, 'verifier answer has no "pass" or "score"'),
        (b"<html>oops</html>", False, "verifier answer is not JSON"),
        (b"[1]", False, 'verifier answer has no "pass" or "score"'),
    ],
)
def test_a_verifiers_answer_passes_only_when_it_says_so(raw, ok, detail):
    assert checks.verdict(raw, pass_score=0.5) == checks.Outcome("webhook", ok, detail)


async def test_the_webhook_is_not_called_when_a_cheaper_check_failed_already():
    specs = (CheckSpec("not-empty"), CheckSpec("webhook", url="http://127.0.0.1:9/never"))

    outcomes = await checks.run_checks(specs, said(""), CheckContext(request={}, client=None))

    assert [(o.type, o.ok) for o in outcomes] == [("not-empty", False), ("webhook", False)]
    assert outcomes[1].detail == "not called: an earlier check failed"
