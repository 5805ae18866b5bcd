"""The cascade strategy through the official openai SDK against a real gateway: the cheap step's answer is final
when it passes every check, else the call climbs; streams are held, never answered twice; a verifier that fails,
times out or answers garbage makes the climb go on; max_cost_usd stops it; the one usage record bills every step
and its decision, like x-tollway-route, says which step answered and what failed."""

from decimal import Decimal

import openai
import pytest

from portal import services
from routing.catalogue import import_catalogue
from tests.gateway import start_gateway, wait_for_usage
from tests.portal.factories import TeamFactory
from tests.upstreams.canned_server import CannedUpstream, Verifier
from tests.upstreams.server import LoopbackServer

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = [{"role": "user", "content": "Which is it: A, B, C or D?"}]
PREMIUM_ANSWER = "C"
# (alias, the check) -- one alias per check type, each climbing from cheap to premium
CHECKED = {
    "by-not-empty": {"type": "not-empty"},
    "by-not-truncated": {"type": "not-truncated"},
    "by-json": {"type": "json"},
    "by-refusal": {"type": "refusal"},
    "by-regex": {"type": "regex", "pattern": "^[A-D]$"},
    "by-min-logprob": {"type": "min-logprob", "threshold": -1.0},
}
VERIFIERS = {"/pass", "/fail", "/score/0.9", "/score/0.1", "/garbage", "/slow", "/500"}


def deployment(name: str, price_in: str, price_out: str) -> dict:
    return {"name": name, "provider": "canned", "model": name, "input_per_1m": price_in, "output_per_1m": price_out}


def cascade(steps, *checks, **extra) -> dict:
    return {"strategy": "cascade", "cascade": {"steps": list(steps), "checks": list(checks), **extra}}


@pytest.fixture
def upstream():
    canned = CannedUpstream()
    with LoopbackServer(canned) as server:
        canned.url = server.url
        canned.answer("premium", PREMIUM_ANSWER)
        yield canned


@pytest.fixture
def verifier():
    server_app = Verifier()
    with LoopbackServer(server_app) as server:
        server_app.url = server.url
        yield server_app


@pytest.fixture
def sdk(upstream, verifier):
    deployments = ["cheap", "mid", "premium"]
    aliases = [
        {"name": n, "deployments": deployments, "routing": cascade(["cheap", "premium"], c)} for n, c in CHECKED.items()
    ]
    for path in VERIFIERS:
        check = {"type": "webhook", "url": f"{verifier.url}{path}", "timeout_ms": 300, "pass_score": 0.5}
        aliases.append(
            {
                "name": "verified" + path.replace("/", "-"),
                "deployments": deployments,
                "routing": cascade(["cheap", "premium"], check),
            }
        )
    aliases.append(
        {
            "name": "capped",
            "deployments": deployments,
            "routing": cascade(
                ["cheap", "mid", "premium"], {"type": "regex", "pattern": "^[A-D]$"}, max_cost_usd="0.01"
            ),
        }
    )
    import_catalogue(
        data={
            "providers": [{"name": "canned", "kind": "openai-compatible", "base_url": f"{upstream.url}/v1"}],
            "deployments": [
                deployment("cheap", "1", "2"),
                deployment("mid", "10", "20"),
                deployment("premium", "100", "300"),
            ],
            "aliases": aliases,
        }
    )
    key = services.issue_api_key(team=TeamFactory(name="Checkout", tenant__name="Acme"), name="cascade").secret
    with start_gateway() as gateway:
        yield openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)


def ask(sdk, alias: str, *, stream: bool, **extra) -> tuple[str, dict]:
    """(the answer's text as the client got it, the response headers)."""
    if not stream:
        raw = sdk.chat.completions.with_raw_response.create(model=alias, messages=CHAT, **extra)
        return raw.parse().choices[0].message.content, raw.headers
    raw = sdk.chat.completions.with_raw_response.create(model=alias, messages=CHAT, stream=True, **extra)
    pieces, finishes = [], []
    for chunk in raw.parse():
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    assert len(finishes) == 1, finishes  # one answer, never two streams in one
    return "".join(pieces), raw.headers


# cheap's passing answer, its failing one: (content, finish_reason, logprobs)
ANSWERS = {
    "by-not-empty": (("B", "stop", None), ("", "stop", None)),
    "by-not-truncated": (("B", "stop", None), ("B is the answer becau", "length", None)),
    "by-json": (('{"answer": "B"}', "stop", None), ('{"answer": "B"', "stop", None)),
    "by-refusal": (("B", "stop", None), ("I'm sorry, but I can't help with that.", "stop", None)),
    "by-regex": (("B", "stop", None), ("The answer is B", "stop", None)),
    "by-min-logprob": (("B", "stop", [-0.05]), ("B", "stop", [-4.0])),
}


@pytest.mark.parametrize("alias", list(CHECKED))
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_each_check_keeps_a_passing_cheap_answer_and_climbs_past_a_failing_one(sdk, upstream, alias, stream):
    (good, good_finish, good_logprobs), (bad, bad_finish, bad_logprobs) = ANSWERS[alias]

    upstream.answer("cheap", good, finish_reason=good_finish, logprobs=good_logprobs)
    kept, headers = ask(sdk, alias, stream=stream)
    assert (kept, headers["x-tollway-deployment"]) == (good, "cheap")
    assert headers["x-tollway-route"] == "cascade (step 1 of 2: cheap)"

    upstream.answer("cheap", bad, finish_reason=bad_finish, logprobs=bad_logprobs)
    climbed, headers = ask(sdk, alias, stream=stream)
    failed = CHECKED[alias]["type"]
    assert (climbed, headers["x-tollway-deployment"]) == (PREMIUM_ANSWER, "premium")
    assert headers["x-tollway-route"] == f"cascade (step 2 of 2: premium; cheap failed {failed})"
    assert headers["x-tollway-attempts"] == "2"
    assert upstream.models_called() == ["cheap", "cheap", "premium"]
    wait_for_usage(2)


def test_min_logprob_climbs_when_the_provider_returned_no_logprobs(sdk, upstream):
    upstream.answer("cheap", "B")

    answer, headers = ask(sdk, "by-min-logprob", stream=False)

    assert (answer, headers["x-tollway-deployment"]) == (PREMIUM_ANSWER, "premium")
    [record] = wait_for_usage(1)
    assert record.decision["checks"][0]["details"] == {"min-logprob": "no logprobs returned"}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_json_is_checked_against_the_requests_schema(sdk, upstream, stream):
    schema = {"type": "object", "properties": {"answer": {"enum": ["A", "B"]}}, "required": ["answer"]}
    response_format = {"type": "json_schema", "json_schema": {"name": "pick", "schema": schema}}
    upstream.answer("cheap", '{"answer": "E"}')

    answer, headers = ask(sdk, "by-json", stream=stream, response_format=response_format)

    assert headers["x-tollway-deployment"] == "premium"
    [record] = wait_for_usage(1)
    assert record.decision["checks"][0]["details"] == {"json": "$.answer: not one of the enum"}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(
    ("path", "answered_by", "detail"),
    [
        ("/pass", "cheap", None),
        ("/score/0.9", "cheap", "score 0.9 vs 0.5"),
        ("/fail", "premium", "verifier said fail"),
        ("/score/0.1", "premium", "score 0.1 vs 0.5"),
        ("/garbage", "premium", "verifier answer is not JSON"),
        ("/slow", "premium", "no answer within 300 ms"),
        ("/500", "premium", "verifier answered 500"),
    ],
)
def test_a_webhook_verifier_decides_and_one_that_fails_times_out_or_answers_garbage_only_climbs(
    sdk, upstream, verifier, path, answered_by, detail, stream
):
    upstream.answer("cheap", "B")

    answer, headers = ask(sdk, "verified" + path.replace("/", "-"), stream=stream)

    assert headers["x-tollway-deployment"] == answered_by
    assert answer == ("B" if answered_by == "cheap" else PREMIUM_ANSWER)
    posted = verifier.log.last["json"]
    assert posted["answer"] == "B" and posted["request"]["messages"] == CHAT
    [record] = wait_for_usage(1)
    assert record.status == 200
    assert record.decision["checks"][0]["details"] == ({"webhook": detail} if detail else {})


def test_the_usage_record_bills_every_step_and_its_decision_lists_both_attempts(sdk, upstream):
    upstream.answer("cheap", "The answer is B")

    sdk.chat.completions.create(model="by-regex", messages=CHAT)

    [record] = wait_for_usage(1)
    # 10 prompt + 20 completion tokens on each step: cheap at $1/$2, premium at $100/$300 per million.
    cheap, premium = Decimal("0.00005"), Decimal("0.007")
    assert record.cost_usd == cheap + premium
    assert (record.prompt_tokens, record.completion_tokens) == (20, 40)
    assert (record.deployment, record.attempts, record.strategy) == ("premium", 2, "cascade")
    assert [(a["deployment"], a["status"]) for a in record.decision["attempts"]] == [("cheap", 200), ("premium", 200)]
    assert record.decision["checks"] == [
        {"step": "cheap", "passed": False, "failed": ["regex"], "details": {"regex": "no match"}}
    ]
    assert record.decision["reason"] == "step 2 of 2: premium; cheap failed regex"


def test_a_streamed_climb_bills_both_steps_on_one_record(sdk, upstream):
    upstream.answer("cheap", "")

    answer, _ = ask(sdk, "by-not-empty", stream=True)

    assert answer == PREMIUM_ANSWER
    [record] = wait_for_usage(1)
    assert record.cost_usd == Decimal("0.00705") and record.stream is True
    assert [a["deployment"] for a in record.decision["attempts"]] == ["cheap", "premium"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_max_cost_usd_stops_the_climb_and_the_best_answer_so_far_is_final(sdk, upstream, stream):
    upstream.answer("cheap", "maybe B")
    upstream.answer("mid", "B, I think")

    # 100 tokens of output at most: premium is estimated above $0.01 before it is tried, mid is not.
    answer, headers = ask(sdk, "capped", stream=stream, max_tokens=100)

    assert (answer, headers["x-tollway-deployment"]) == ("B, I think", "mid")
    assert "max_cost_usd stopped the climb" in headers["x-tollway-route"]
    assert "premium" not in upstream.models_called()
    [record] = wait_for_usage(1)
    assert record.cost_usd == Decimal("0.00005") + Decimal("0.0005")
    assert record.decision["checks"][-1]["stopped"] == "max_cost_usd"


LONG_ANSWER = "B" * 40  # a role chunk, then 10 chunks of 4 bytes, a finish chunk (and the usage chunk)


@pytest.mark.parametrize(
    ("max_chunks", "max_bytes", "detail"),
    [
        (5, 1_000_000, "held 6 chunks, 20 bytes: cap 5 chunks, 1000000 bytes"),
        (1_000, 30, "held 9 chunks, 32 bytes: cap 1000 chunks, 30 bytes"),
    ],
    ids=["chunks", "bytes"],
)
def test_a_held_stream_past_the_hold_cap_fails_as_too_long_to_hold_and_climbs(
    sdk, upstream, settings, max_chunks, max_bytes, detail
):
    settings.TOLLWAY_CASCADE_HOLD_MAX_CHUNKS, settings.TOLLWAY_CASCADE_HOLD_MAX_BYTES = max_chunks, max_bytes
    upstream.answer("cheap", LONG_ANSWER)

    answer, headers = ask(sdk, "by-not-empty", stream=True)

    # Not released unchecked: the client sees premium's answer alone, in one stream.
    assert (answer, headers["x-tollway-deployment"]) == (PREMIUM_ANSWER, "premium")
    assert headers["x-tollway-route"] == "cascade (step 2 of 2: premium; cheap failed too-long-to-hold)"
    [record] = wait_for_usage(1)
    assert record.decision["checks"] == [
        {"step": "cheap", "passed": False, "failed": ["too-long-to-hold"], "details": {"too-long-to-hold": detail}}
    ]
    assert [a["deployment"] for a in record.decision["attempts"]] == ["cheap", "premium"]


def test_the_hold_cap_leaves_answers_within_it_and_calls_that_are_not_streamed_alone(sdk, upstream, settings):
    settings.TOLLWAY_CASCADE_HOLD_MAX_CHUNKS, settings.TOLLWAY_CASCADE_HOLD_MAX_BYTES = 13, 40
    upstream.answer("cheap", LONG_ANSWER)  # at both caps, not past them

    streamed, streamed_headers = ask(sdk, "by-not-empty", stream=True)
    plain, plain_headers = ask(sdk, "by-not-empty", stream=False)  # nothing held: the cap is a stream's

    assert (streamed, streamed_headers["x-tollway-deployment"]) == (LONG_ANSWER, "cheap")
    assert (plain, plain_headers["x-tollway-deployment"]) == (LONG_ANSWER, "cheap")
    wait_for_usage(2)
