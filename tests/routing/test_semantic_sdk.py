"""Semantic routing through the official openai SDK against a real gateway and a loopback upstream, with the real
embedding model: a prompt goes to the route of its nearest example (a deployment of the alias, or another alias),
one below the threshold to the default; x-tollway-route and the recorded decision say which route and its score;
hostile and huge prompts are bounded and still answered."""

import re
import time

import openai
import pytest

from portal import services
from routing.catalogue import import_catalogue
from tests.gateway import start_gateway, wait_for_usage
from tests.portal.factories import TeamFactory
from tests.upstreams.canned_server import CannedUpstream
from tests.upstreams.server import LoopbackServer

pytestmark = pytest.mark.django_db(transaction=True)

ROUTING = {
    "strategy": "semantic",
    "routes": [
        {
            "name": "code",
            "target": "code-model",
            "examples": ["Write a Python function that reverses a string", "Fix this SQL query: SELECT * FROM users"],
        },
        {"name": "chit-chat", "target": "cheap-llama", "examples": ["Hi!", "Thanks, that helps", "Good morning!"]},
        {"name": "recipes", "target": "kitchen", "examples": ["Give me a recipe for vegetable soup"]},
    ],
    "threshold": 0.6,
    "default": "premium-gpt4",
}
DEPLOYMENTS = ["cheap-llama", "code-model", "premium-gpt4"]
SCORED = re.compile(r"^semantic \((route|default, best) (?P<route>[\w-]+),? (?P<score>[01]\.\d\d)[;)]")


@pytest.fixture
def upstream():
    canned = CannedUpstream()
    with LoopbackServer(canned) as server:
        canned.url = server.url
        for name in [*DEPLOYMENTS, "chef-model"]:
            canned.answer(name, f"answered by {name}")
        yield canned


@pytest.fixture
def sdk(upstream):
    import_catalogue(
        data={
            "providers": [{"name": "canned", "kind": "openai-compatible", "base_url": f"{upstream.url}/v1"}],
            "deployments": [
                {"name": n, "provider": "canned", "model": n, "input_per_1m": "1", "output_per_1m": "2"}
                for n in [*DEPLOYMENTS, "chef-model"]
            ],
            "aliases": [
                {"name": "kitchen", "deployments": ["chef-model"]},
                {"name": "by-intent", "deployments": DEPLOYMENTS, "routing": ROUTING},
            ],
        }
    )
    key = services.issue_api_key(team=TeamFactory(name="Support", tenant__name="Acme"), name="semantic").secret
    with start_gateway() as gateway:
        yield openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=60)


def ask(sdk, text, *, stream: bool = False) -> tuple[str, dict]:
    messages = [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": text}]
    raw = sdk.chat.completions.with_raw_response.create(model="by-intent", messages=messages, stream=stream)
    if stream:
        return "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices), raw.headers
    return raw.parse().choices[0].message.content, raw.headers


@pytest.mark.parametrize(
    ("prompt", "route", "deployment"),
    [
        ("Write a Python function that reverses a list", "code", "code-model"),
        ("Hello there!", "chit-chat", "cheap-llama"),
        ("Give me a recipe for tomato soup", "recipes", "chef-model"),  # a route to another alias
    ],
)
def test_a_prompt_goes_to_its_nearest_route_and_the_header_and_record_say_so(sdk, prompt, route, deployment):
    answer, headers = ask(sdk, prompt)
    assert (answer, headers["x-tollway-deployment"]) == (f"answered by {deployment}", deployment)
    said = SCORED.match(headers["x-tollway-route"])
    assert said is not None and said["route"] == route, headers["x-tollway-route"]
    assert float(said["score"]) >= 0.6
    if route == "recipes":
        assert headers["x-tollway-route"].endswith("; via alias kitchen)")

    (record,) = wait_for_usage(1)
    assert (record.deployment, record.decision["strategy"]) == (deployment, "semantic")
    chosen = record.decision["semantic"]
    assert (chosen["route"], chosen["best_route"], chosen["target"]) == (route, route, ROUTING_TARGETS[route])
    assert f"{chosen['score']:.2f}" == said["score"]
    assert record.decision["candidates"][0] == deployment


ROUTING_TARGETS = {r["name"]: r["target"] for r in ROUTING["routes"]}


def test_a_prompt_below_the_threshold_goes_to_the_default(sdk, upstream):
    answer, headers = ask(sdk, "What was the population of Mongolia in 1990?")
    assert (answer, headers["x-tollway-deployment"]) == ("answered by premium-gpt4", "premium-gpt4")
    said = SCORED.match(headers["x-tollway-route"])
    assert said is not None and headers["x-tollway-route"].startswith("semantic (default, best "), headers
    assert float(said["score"]) < 0.6
    (record,) = wait_for_usage(1)
    chosen = record.decision["semantic"]
    assert (chosen["route"], chosen["target"], record.deployment) == ("", "premium-gpt4", "premium-gpt4")
    assert chosen["score"] < 0.6 and chosen["best_route"] == said["route"]


def test_a_stream_is_routed_the_same_way(sdk):
    answer, headers = ask(sdk, "Hi!", stream=True)
    assert (answer, headers["x-tollway-deployment"]) == ("answered by cheap-llama", "cheap-llama")
    assert headers["x-tollway-route"] == "semantic (route chit-chat, 1.00)"


def test_hostile_and_huge_prompts_are_bounded_and_still_answered(sdk, upstream):
    # 400,000 characters: only its last 2,000 are read, and only 128 tokens of those are embedded.
    huge = "Write a Python function. " + "\u202e\U0001f600 zalgo\u0336\u0337 \x00 " * 20_000
    started = time.monotonic()
    answer, headers = ask(sdk, huge)
    assert time.monotonic() - started < 10  # one bounded embedding, not 400,000 characters' worth
    assert SCORED.match(headers["x-tollway-route"]) is not None, headers["x-tollway-route"]
    assert answer == f"answered by {headers['x-tollway-deployment']}"
    # No user text at all (only a system message, or content parts without text): the default, saying why.
    raw = sdk.chat.completions.with_raw_response.create(
        model="by-intent", messages=[{"role": "system", "content": "Write a Python function"}]
    )
    assert raw.headers["x-tollway-route"] == "semantic (default, no user text)"
    assert raw.headers["x-tollway-deployment"] == "premium-gpt4"
    records = wait_for_usage(2)
    assert [r.decision["semantic"]["why"] for r in records] == ["", "no user text"]
