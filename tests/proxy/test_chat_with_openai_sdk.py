from decimal import Decimal

import openai
import pytest

from tests.gateway import wait_for_usage
from tests.upstreams import openai_server

pytestmark = pytest.mark.django_db(transaction=True)


def client_for(gateway, api_key) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=api_key, max_retries=0)


def test_a_chat_completion_comes_back_and_is_recorded_with_exact_cost(gateway, api_key):
    response = client_for(gateway, api_key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
    )
    completion = response.parse()

    assert completion.choices[0].message.content == openai_server.REPLY
    assert response.headers["x-tollway-deployment"] == "main-gpt-4o-mini"
    assert response.headers["x-request-id"].startswith("req_")
    [record] = wait_for_usage(1)
    assert record.request_id == response.headers["x-request-id"]
    assert (record.status, record.prompt_tokens, record.completion_tokens) == (200, 9, 12)
    # 9 * 0.15 / 1M + 12 * 0.60 / 1M
    assert record.cost_usd == Decimal("0.00000855")
    assert record.alias == "gpt-4o-mini" and record.deployment == "main-gpt-4o-mini"
    assert record.key_prefix.startswith("sk-tw-") and not record.estimated


def test_a_streamed_chat_arrives_in_pieces_and_records_the_upstream_usage(gateway, api_key):
    stream = client_for(gateway, api_key).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "".join(openai_server.STREAM_PIECES)
    assert chunks[-1].usage.completion_tokens == openai_server.STREAM_COMPLETION_TOKENS
    [record] = wait_for_usage(1)
    assert record.stream and record.status == 200
    assert (record.prompt_tokens, record.completion_tokens) == (9, 5)
    assert record.ttfb_ms is not None and record.ttfb_ms <= record.latency_ms


def test_a_stream_hides_the_usage_chunk_when_the_client_did_not_ask_for_it(gateway, api_key):
    chunks = list(
        client_for(gateway, api_key).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
    )

    assert all(chunk.usage is None for chunk in chunks)
    assert all(chunk.choices for chunk in chunks)
    [record] = wait_for_usage(1)
    assert record.completion_tokens == 5 and not record.estimated


def test_a_failing_deployment_fails_over_to_the_next_one(gateway, api_key):
    response = client_for(gateway, api_key).chat.completions.with_raw_response.create(
        model="failover", messages=[{"role": "user", "content": "Hi"}]
    )

    assert response.headers["x-tollway-deployment"] == "main-gpt-4o-mini"
    [record] = wait_for_usage(1)
    assert record.attempts == 2 and record.deployment == "main-gpt-4o-mini" and record.status == 200


def test_a_stream_without_upstream_usage_is_counted_and_marked_estimated(gateway, api_key):
    list(
        client_for(gateway, api_key).chat.completions.create(
            model="no-usage", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
    )

    [record] = wait_for_usage(1)
    assert record.estimated
    assert record.completion_tokens > 0 and record.prompt_tokens > 0


def test_tool_calls_come_back_through_the_sdk(gateway, api_key):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    completion = client_for(gateway, api_key).chat.completions.create(
        model="tools", messages=[{"role": "user", "content": "Weather?"}], tools=tools, tool_choice="auto"
    )

    call = completion.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and call.function.arguments == '{"city":"Paris"}'


def test_unknown_fields_reach_an_openai_compatible_upstream(gateway, api_key, openai_upstream):
    client_for(gateway, api_key).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Hi"}],
        seed=7,
        user="u-1",
        extra_body={"top_k": 40, "repetition_penalty": 1.1},
    )

    sent = openai_upstream.log.last["json"]
    assert sent["top_k"] == 40 and sent["repetition_penalty"] == 1.1 and sent["seed"] == 7
    assert sent["model"] == "gpt-4o-mini"
    assert openai_upstream.log.last["headers"]["authorization"] == "Bearer sk-upstream-test"


def test_embeddings_and_models_work_through_the_sdk(gateway, api_key):
    client = client_for(gateway, api_key)

    embedding = client.embeddings.create(model="embed", input=["a", "b"])
    models = {m.id for m in client.models.list()}

    assert len(embedding.data) == 2 and embedding.data[0].embedding == [0.1, 0.2, 0.3]
    assert {"gpt-4o-mini", "failover", "embed"} <= models
    assert client.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"
