"""A template's output schema on /v1/prompts: sent upstream as a json_schema response_format (unless the template
set its own), a matching answer parsed into `choices[0].message.parsed`, a mismatch answered 422
output_schema_mismatch with the validation message and the raw text. A stream's text is out before it can be
checked: a mismatch arrives as the stream's last SSE event (an error, in place of [DONE]) and on the record."""

import httpx
import orjson
import pytest

from portal import services as portal_services
from tests.factories import DeploymentFactory, ProviderFactory, make_alias
from tests.gateway import start_gateway, wait_for_usage
from tests.prompts.gateway_prompts import call_prompt, published
from tests.upstreams.canned_server import CannedUpstream
from tests.upstreams.server import LoopbackServer

pytestmark = pytest.mark.django_db(transaction=True)

RATING = {
    "type": "object",
    "properties": {"rating": {"type": "string", "enum": ["buy", "hold", "sell"]}, "confidence": {"type": "number"}},
    "required": ["rating"],
}


@pytest.fixture
def upstream(transactional_db):
    canned = CannedUpstream()
    with LoopbackServer(canned) as server:
        provider = ProviderFactory(name="canned", base_url=f"{server.url}/v1")
        make_alias("analyst", DeploymentFactory(name="analyst-1", provider=provider, model="analyst-model"))
        yield canned


@pytest.fixture
def key(team, upstream):
    published(team=team, alias="analyst", slug="rating", output_schema=RATING)
    published(
        team=team,
        alias="analyst",
        slug="own-format",
        output_schema=RATING,
        parameters={"response_format": {"type": "json_object"}},
    )
    return portal_services.issue_api_key(team=team).secret


@pytest.fixture
def gateway(key):
    with start_gateway() as server:
        yield server


def test_a_matching_answer_is_parsed_and_the_schema_went_upstream_as_the_response_format(gateway, key, upstream):
    upstream.answer("analyst-model", '{"rating": "buy", "confidence": 0.8}')

    answer = call_prompt(gateway.url, key, "rating")

    assert answer.status_code == 200, answer.text
    message = answer.json()["choices"][0]["message"]
    assert message["parsed"] == {"rating": "buy", "confidence": 0.8}
    assert message["content"] == '{"rating": "buy", "confidence": 0.8}'
    assert upstream.log.last["json"]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "rating", "schema": RATING},
    }
    [record] = wait_for_usage(1)
    assert (record.status, record.prompt, record.prompt_version) == (200, "rating", 1)


def test_a_templates_own_response_format_is_sent_as_it_is_and_the_answer_still_checked(gateway, key, upstream):
    upstream.answer("analyst-model", '{"rating": "hold"}')

    answer = call_prompt(gateway.url, key, "own-format")

    assert answer.json()["choices"][0]["message"]["parsed"] == {"rating": "hold"}
    assert upstream.log.last["json"]["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ('{"rating": "maybe"}', "$.rating: not one of the enum"),
        ('{"confidence": 1}', "rating"),
        ("I think you should buy.", "not JSON"),
    ],
)
def test_an_answer_off_the_schema_is_422_with_the_message_and_the_raw_text(gateway, key, upstream, content, says):
    upstream.answer("analyst-model", content)

    answer = call_prompt(gateway.url, key, "rating")

    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "output_schema_mismatch" and says in error["message"]
    assert error["raw_output"] == content
    assert answer.headers["x-tollway-prompt"] == "rating@1"
    [record] = wait_for_usage(1)
    # The upstream answered and was paid: the record says so, with the tokens.
    assert (record.status, record.error_type, record.completion_tokens) == (422, "output_schema_mismatch", 20)
    assert record.cost_usd > 0


def stream_events(url: str, key: str) -> list[dict | str]:
    with httpx.stream(
        "POST",
        f"{url}/v1/prompts/rating/completions",
        json={"variables": {"ticker": "ACME"}, "stream": True},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    ) as answer:
        assert answer.status_code == 200
        lines = [line[6:] for line in answer.iter_lines() if line.startswith("data: ")]
    return [line if line == "[DONE]" else orjson.loads(line) for line in lines]


def streamed_text(events: list) -> str:
    return "".join(
        e["choices"][0]["delta"].get("content") or "" for e in events if isinstance(e, dict) and e.get("choices")
    )


def test_a_stream_that_matches_ends_as_usual(gateway, key, upstream):
    upstream.answer("analyst-model", '{"rating": "sell"}')

    events = stream_events(gateway.url, key)

    assert streamed_text(events) == '{"rating": "sell"}' and events[-1] == "[DONE]"
    [record] = wait_for_usage(1)
    assert (record.status, record.error_type, record.stream) == (200, "", True)


def test_a_stream_off_the_schema_ends_with_an_error_event_instead_of_done(gateway, key, upstream):
    upstream.answer("analyst-model", '{"rating": "maybe"}')

    events = stream_events(gateway.url, key)

    assert streamed_text(events) == '{"rating": "maybe"}'
    assert "[DONE]" not in events
    assert events[-1]["error"]["code"] == "output_schema_mismatch"
    assert "$.rating" in events[-1]["error"]["message"]
    [record] = wait_for_usage(1)
    assert (record.status, record.error_type, record.prompt_version) == (200, "output_schema_mismatch", 1)
