"""The official openai SDK's Responses API (create, stream, parse, a function-tool loop) through the gateway, on a
chat-completions-only OpenAI-compatible upstream and on an Anthropic one (tests/responses/conftest.py)."""

import json

import pytest

from tests.gateway import wait_for_usage
from tests.responses.conftest import STREAMED, WEATHER_TOOL

pytestmark = pytest.mark.django_db(transaction=True)


def test_create_answers_text_with_exact_usage(gateway):
    response = gateway.client().responses.create(model="chat", instructions="Be brief.", input="Hi")

    assert response.status == "completed" and response.error is None
    assert response.output_text == gateway.reply
    [item] = response.output
    assert item.type == "message" and item.role == "assistant" and item.content[0].type == "output_text"
    [record] = wait_for_usage(1)
    assert record.endpoint == "responses" and record.status == 200 and not record.estimated
    assert record.provider == f"{gateway.kind}-test"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (
        record.prompt_tokens,
        record.completion_tokens,
    )
    assert response.usage.total_tokens == record.prompt_tokens + record.completion_tokens
    assert record.cost_usd > 0
    # The same prompt through chat completions costs the same: the fixed upstream usage, priced alike.
    gateway.client().chat.completions.create(
        model="chat", messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    )
    chat_record = wait_for_usage(2)[1]
    assert chat_record.endpoint == "chat.completions"
    assert (chat_record.prompt_tokens, chat_record.cost_usd) == (record.prompt_tokens, record.cost_usd)


def test_stream_relays_the_responses_event_sequence(gateway):
    client = gateway.client()
    with client.responses.stream(model="chat", input="Hi") as stream:
        events = list(stream)
        response = stream.get_final_response()

    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    for expected in (
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ):
        assert expected in kinds
    deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert deltas.replace(" ", "") == STREAMED.replace(" ", "")
    assert response.output_text == deltas and response.status == "completed"
    [record] = wait_for_usage(1)
    assert record.endpoint == "responses" and record.stream and record.status == 200 and not record.estimated
    assert (response.usage.input_tokens, response.usage.output_tokens) == (
        record.prompt_tokens,
        record.completion_tokens,
    )


def test_create_with_stream_true_yields_typed_events(gateway):
    events = list(
        gateway.client().responses.create(model="tools", input="Weather in Paris?", tools=[WEATHER_TOOL], stream=True)
    )

    kinds = [event.type for event in events]
    assert "response.function_call_arguments.delta" in kinds and "response.function_call_arguments.done" in kinds
    [done] = [event for event in events if event.type == "response.function_call_arguments.done"]
    assert json.loads(done.arguments) == {"city": "Paris"}
    final = events[-1].response
    calls = [item for item in final.output if item.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Paris"})]


def test_function_tool_loop_with_previous_response_id(gateway):
    client = gateway.client()
    first = client.responses.create(model="tools", input="Weather in Paris?", tools=[WEATHER_TOOL])
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}

    second = client.responses.create(
        model="tools",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 24 C"}],
        tools=[WEATHER_TOOL],
    )

    assert second.output_text == gateway.reply and second.previous_response_id == first.id
    upstream = gateway.upstreams[gateway.kind].log.last["json"]
    # The upstream saw the whole conversation: question, the call, its result.
    text = json.dumps(upstream)
    assert "Weather in Paris?" in text and "Sunny, 24 C" in text and call.call_id in text
    assert len(wait_for_usage(2)) == 2


def test_parse_into_a_pydantic_model(gateway):
    from pydantic import BaseModel

    class City(BaseModel):
        name: str
        population_millions: float
        is_capital: bool

    if gateway.kind != "openai-compatible":
        pytest.skip("the Anthropic test upstream answers fixed text, not the schema")
    parsed = gateway.client().responses.parse(model="json", input="Tell me about Paris", text_format=City)

    assert parsed.output_parsed == City(name="Paris", population_millions=1.5, is_capital=True)
    sent = gateway.upstreams[gateway.kind].log.last["json"]
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["name"] == "City"


def test_max_output_tokens_cut_is_incomplete(gateway):
    response = gateway.client().responses.create(model="short", input="Hi", max_output_tokens=16)

    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    sent = gateway.upstreams[gateway.kind].log.last["json"]
    assert sent["max_tokens" if gateway.kind == "anthropic" else "max_completion_tokens"] == 16
