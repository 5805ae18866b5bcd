"""The official openai SDK's Responses API (create, stream, parse, a function-tool loop) through the gateway, on a
chat-completions-only OpenAI-compatible upstream and on an Anthropic one (tests/responses/conftest.py)."""

import json

import pytest

from tests.gateway import wait_for_usage

pytestmark = pytest.mark.django_db(transaction=True)

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def test_create_answers_text_with_exact_usage(gateway):
    response = gateway.client().responses.create(model="chat", instructions="Be brief.", input="Hi")

    assert response.status == "completed" and response.error is None
    assert response.output_text == gateway.reply
    [item] = response.output
    assert item.type == "message" and item.role == "assistant" and item.content[0].type == "output_text"
    [record] = wait_for_usage(1)
    assert record.endpoint == "responses" and record.status == 200 and not record.estimated
    assert record.provider == f"{gateway.kind}-test"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (record.prompt_tokens, record.completion_tokens)
    assert response.usage.total_tokens == record.prompt_tokens + record.completion_tokens
    assert record.cost_usd > 0
