"""POST /v1/prompts/{slug}/completions on a real gateway: the template rendered and routed like a chat call (an
openai SDK chat call beside it), streamed too, with x-tollway-prompt and one usage record naming slug and
version; named versions, environments, variables errors and locked or unknown overrides."""

import time
from decimal import Decimal

import httpx
import openai
import pytest

from portal import services as portal_services
from portal.models import Membership
from portal.prompts import services as prompt_services
from tests.gateway import start_gateway, wait_for_usage
from tests.portal.factories import MembershipFactory
from tests.prompts.gateway_prompts import call_prompt, new_version, published
from tests.upstreams import openai_server

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def prompt(team, catalogue):
    template, owner = published(team=team, parameters={"temperature": 0.2}, locked_parameters=["max_tokens"])
    new_version(template, owner, messages=[{"role": "user", "content": "v2 on {{ticker}}"}])
    return template


@pytest.fixture
def key(team, catalogue):
    return portal_services.issue_api_key(team=team, name="prompt caller").secret


@pytest.fixture
def gateway(prompt, key):
    with start_gateway() as server:
        yield server


def test_a_prompt_call_is_rendered_routed_and_recorded_like_the_chat_call_beside_it(gateway, key, openai_upstream):
    chat = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
    )
    answer = call_prompt(gateway.url, key, "ticker-summary", {"variables": {"ticker": "ACME", "quarter": "Q3"}})

    assert answer.status_code == 200, answer.text
    assert answer.headers["x-tollway-prompt"] == "ticker-summary@1"
    assert answer.headers["x-tollway-deployment"] == "main-gpt-4o-mini"
    body = answer.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == chat.choices[0].message.content
    sent = openai_upstream.log.last["json"]
    assert sent["messages"] == [
        {"role": "system", "content": "You are a terse equity analyst."},
        {"role": "user", "content": "Summarise ACME for Q3 in 50 words."},
    ]
    assert sent["model"] == "gpt-4o-mini" and sent["temperature"] == 0.2
    chat_record, prompt_record = wait_for_usage(2)
    assert (chat_record.prompt, chat_record.prompt_version) == ("", None)
    assert (prompt_record.prompt, prompt_record.prompt_version) == ("ticker-summary", 1)
    assert prompt_record.endpoint == "prompts.completions" and prompt_record.alias == "gpt-4o-mini"
    assert prompt_record.request_id == answer.headers["x-request-id"]
    assert prompt_record.cost_usd == chat_record.cost_usd == Decimal("0.00000855")
    assert prompt_record.decision["prompt"] == "ticker-summary@1"


def test_a_streamed_prompt_call_arrives_in_pieces_and_is_recorded_once(gateway, key):
    body = {"variables": {"ticker": "ACME"}, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/prompts/ticker-summary/completions",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    ) as answer:
        events = [line for line in answer.iter_lines() if line.startswith("data: ")]
        header = answer.headers["x-tollway-prompt"]

    assert answer.status_code == 200 and header == "ticker-summary@1"
    assert events[-1] == "data: [DONE]"
    text = "".join(
        (c["choices"][0]["delta"].get("content") or "")
        for c in (httpx.Response(200, content=e[6:]).json() for e in events[:-1])
        if c.get("choices")
    )
    assert text == "".join(openai_server.STREAM_PIECES)
    [record] = wait_for_usage(1)
    assert record.stream and record.status == 200
    assert (record.prompt, record.prompt_version, record.completion_tokens) == ("ticker-summary", 1, 5)


def test_a_version_named_in_the_path_or_the_body_is_served_published_or_not(gateway, key, openai_upstream):
    by_path = call_prompt(gateway.url, key, "ticker-summary@2")
    sent_by_path = openai_upstream.log.last["json"]["messages"]
    by_body = call_prompt(gateway.url, key, "ticker-summary", {"variables": {"ticker": "ACME"}, "version": 2})
    conflicting = call_prompt(gateway.url, key, "ticker-summary@1", {"variables": {"ticker": "A"}, "version": 2})
    missing = call_prompt(gateway.url, key, "ticker-summary@9")

    assert (by_path.status_code, by_path.headers["x-tollway-prompt"]) == (200, "ticker-summary@2")
    assert sent_by_path == [{"role": "user", "content": "v2 on ACME"}]
    assert (by_body.status_code, by_body.headers["x-tollway-prompt"]) == (200, "ticker-summary@2")
    assert conflicting.status_code == 400 and conflicting.json()["error"]["param"] == "version"
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "prompt_version_not_found"
    records = wait_for_usage(4)
    assert [(r.status, r.prompt_version) for r in records] == [(200, 2), (200, 2), (400, None), (400, None)]
    assert all(r.prompt == "ticker-summary" for r in records)


def test_environments_default_to_prod_and_an_unknown_or_empty_one_is_refused(gateway, key):
    unknown = call_prompt(gateway.url, key, "ticker-summary", {"variables": {"ticker": "A"}, "environment": "qa"})
    empty = call_prompt(gateway.url, key, "ticker-summary", {"variables": {"ticker": "A"}, "environment": "staging"})

    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "environment"
    assert empty.status_code == 404
    assert empty.json()["error"] | {"message": ""} == {
        "message": "",
        "type": "invalid_request_error",
        "param": "environment",
        "code": "prompt_not_published",
    }
    assert "staging" in empty.json()["error"]["message"]
    assert [r.status for r in wait_for_usage(2)] == [400, 404]


@pytest.mark.parametrize(
    ("variables", "param"),
    [
        ({}, "variables.ticker"),  # required, missing
        ({"ticker": "A", "words": "fifty"}, "variables.words"),  # an integer
        ({"ticker": "A", "quarter": "Q5"}, "variables.quarter"),  # not one of the enum
        ({"ticker": "A", "sector": "tech"}, "variables.sector"),  # not a variable of the template
    ],
)
def test_wrong_variables_answer_400_naming_the_variable_and_leave_one_record(gateway, key, variables, param):
    answer = call_prompt(gateway.url, key, "ticker-summary", {"variables": variables})

    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param
    assert answer.headers["x-tollway-prompt"] == "ticker-summary@1"
    [record] = wait_for_usage(1)
    assert (record.status, record.prompt, record.prompt_version, record.cost_usd) == (400, "ticker-summary", 1, 0)


def test_a_locked_parameter_or_an_unknown_field_is_refused_by_name_and_others_are_overridden(
    gateway, key, openai_upstream
):
    locked = call_prompt(gateway.url, key, "ticker-summary", {"variables": {"ticker": "A"}, "max_tokens": 5})
    unknown = call_prompt(gateway.url, key, "ticker-summary", {"variables": {"ticker": "A"}, "messages": []})
    wrong_type = call_prompt(gateway.url, key, "ticker-summary", {"variables": {"ticker": "A"}, "seed": "1"})
    overridden = call_prompt(gateway.url, key, "ticker-summary", {"variables": {"ticker": "A"}, "temperature": 1.5})

    assert locked.status_code == 400
    assert (locked.json()["error"]["param"], locked.json()["error"]["code"]) == ("max_tokens", "parameter_locked")
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "messages"
    assert wrong_type.status_code == 400 and wrong_type.json()["error"]["param"] == "seed"
    assert overridden.status_code == 200
    assert openai_upstream.log.last["json"]["temperature"] == 1.5
    assert [r.status for r in wait_for_usage(4)] == [400, 400, 400, 200]


def test_bad_bodies_and_references_answer_openai_style_errors(gateway, key):
    not_an_object = httpx.post(
        f"{gateway.url}/v1/prompts/ticker-summary/completions",
        content=b"[1]",
        headers={"authorization": f"Bearer {key}"},
    )
    bad_version = call_prompt(gateway.url, key, "ticker-summary@latest")
    nested = httpx.post(f"{gateway.url}/v1/prompts/a/b/completions", headers={"authorization": f"Bearer {key}"})
    no_key = httpx.post(f"{gateway.url}/v1/prompts/ticker-summary/completions", json={})

    assert not_an_object.status_code == 400 and not_an_object.json()["error"]["type"] == "invalid_request_error"
    assert bad_version.status_code == 400 and bad_version.json()["error"]["param"] == "version"
    assert nested.status_code == 404 and nested.json()["error"]["code"] == "unknown_url"
    assert no_key.status_code == 401
    assert [r.status for r in wait_for_usage(2)] == [400, 400]


def test_an_environment_a_tenant_added_is_known_to_the_gateway_before_anything_is_published_there(gateway, key, prompt):
    admin = MembershipFactory(team=None, tenant=prompt.tenant, role=Membership.Role.TENANT_ADMIN).user
    prompt_services.add_environment(prompt.tenant, actor=admin, name="canary")
    # The change feed carries the new environment: within the test refresh interval (0.5 s), no publication.
    deadline = time.monotonic() + 5
    while True:
        answer = call_prompt(
            gateway.url, key, "ticker-summary", {"variables": {"ticker": "A"}, "environment": "canary"}
        )
        if answer.status_code == 404 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["code"] == "prompt_not_published"
