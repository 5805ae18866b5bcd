"""Bodies nested past TOLLWAY_MAX_JSON_DEPTH are refused with 400 naming the field, before anything is routed;
at the limit they are served, and no upstream encoder can fail on what was admitted."""

from decimal import Decimal

import httpx
import orjson
import pytest

from core.values import ModelPrice, Target
from routing.providers.anthropic_request import to_messages_request
from routing.providers.gemini_request import gemini_request
from routing.providers.openai_compatible import OpenAICompatibleAdapter
from routing.proxy import validation
from tests.gateway import wait_for_usage

pytestmark = pytest.mark.django_db(transaction=True)


def nested(depth: int) -> bytes:
    return b"[" * depth + b"0" + b"]" * depth


def chat_with_metadata(metadata: bytes) -> bytes:
    return b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}],"metadata":' + metadata + b"}"


def post(gateway, key, content: bytes, path="/v1/chat/completions"):
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    return httpx.post(f"{gateway.url}{path}", content=content, headers=headers, timeout=30)


@pytest.mark.parametrize("depth", [254, 600, 1023])
def test_a_chat_body_nested_past_the_limit_is_refused_with_400_naming_the_field(gateway, api_key, settings, depth):
    response = post(gateway, api_key, chat_with_metadata(nested(depth)))

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"].startswith("metadata")
    assert error["code"] == "too_deep"
    [record] = wait_for_usage(1)
    assert (record.status, record.error_type) == (400, "too_deep")


def test_a_chat_body_nested_exactly_to_the_limit_is_served(gateway, api_key, settings):
    # The body is level 1, so metadata may hold limit - 1 levels.
    response = post(gateway, api_key, chat_with_metadata(nested(settings.TOLLWAY_MAX_JSON_DEPTH - 2)))

    assert response.status_code == 200, response.text


def test_a_messages_tool_schema_600_deep_is_refused_anthropic_style(gateway, api_key):
    body = (
        b'{"model":"gpt-4o-mini","max_tokens":16,"messages":[{"role":"user","content":"Hi"}],'
        b'"tools":[{"name":"t","input_schema":{"type":"object","properties":' + nested(600) + b"}}]}"
    )
    response = post(gateway, api_key, body, path="/v1/messages")

    assert response.status_code == 400, response.text
    payload = response.json()
    assert payload["type"] == "error"
    assert payload["error"]["type"] == "invalid_request_error"
    assert "tools[0].input_schema" in payload["error"]["message"]


def test_an_encoder_failure_after_admission_is_a_clean_400_on_the_usage_record(gateway, api_key, monkeypatch):
    # Without the depth check the upstream encoder fails: our failure, never a 500 or a 502 blaming the provider.
    monkeypatch.setattr(validation, "check_depth", lambda body, limit: None)
    response = post(gateway, api_key, chat_with_metadata(nested(600)))

    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "request_not_encodable"
    [record] = wait_for_usage(1)
    assert (record.status, record.error_type) == (400, "request_not_encodable")


def test_every_adapter_encodes_a_body_nested_to_the_limit(settings):
    limit = settings.TOLLWAY_MAX_JSON_DEPTH
    schema: object = 0
    for _ in range(limit - 5):  # body, tools, [0], function, parameters: the schema is level 5 and down
        schema = [schema]
    body = {
        "model": "alias",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "Hi"}],
        "tools": [{"type": "function", "function": {"name": "t", "parameters": {"type": "object", "p": schema}}}],
    }
    price = ModelPrice(input_per_million=Decimal(1), output_per_million=Decimal(1))
    target = Target(deployment="d", provider="p", kind="openai", base_url="http://127.0.0.1:1", model="m", price=price)

    assert OpenAICompatibleAdapter().upstream_body(target, body, stream=True)
    assert orjson.dumps(to_messages_request(target, body, stream=False))
    assert orjson.dumps(gemini_request(body))
