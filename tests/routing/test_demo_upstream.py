"""The demo set-up of `make run`, driven with the official SDKs the way a newcomer would: tool calls, JSON mode
and their streams answered by the built-in demo provider, through the gateway."""

import io
import json
from typing import Literal

import anthropic
import jsonschema
import openai
import pytest
from django.core.management import call_command
from pydantic import BaseModel

from config.asgi import application
from tests.upstreams.server import LoopbackServer, free_port

pytestmark = pytest.mark.django_db(transaction=True)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
STOCKS = {
    "type": "function",
    "function": {
        "name": "get_stock_price",
        "description": "Look up the latest price of a stock ticker",
        "parameters": {
            "type": "object",
            "properties": {"ticker": {"type": "string", "minLength": 1, "maxLength": 5}},
            "required": ["ticker"],
        },
    },
}
PARIS = [{"role": "user", "content": "What's the weather in Paris?"}]
ORDER_SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "status": {"type": "string", "enum": ["pending", "shipped", "delivered"]},
        "items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "minItems": 2},
        "total": {"type": "number", "exclusiveMinimum": 0},
        "gift": {"type": ["boolean", "null"]},
        "shipped_at": {"type": "string", "format": "date-time"},
    },
    "required": ["order_id", "status", "items", "total", "gift", "shipped_at"],
    "additionalProperties": False,
    "$defs": {
        "item": {
            "type": "object",
            "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer", "minimum": 1}},
            "required": ["sku", "quantity"],
            "additionalProperties": False,
        }
    },
}


@pytest.fixture
def demo(settings, tmp_path):
    """`make run`'s demo: bootstrap_demo's catalogue and key, the gateway serving its own demo provider."""
    settings.DATA_DIR = tmp_path
    settings.TOLLWAY_DEMO_UPSTREAM = True
    port = free_port()
    out = io.StringIO()
    call_command("bootstrap_demo", "--gateway-url", f"http://127.0.0.1:{port}", "--with-demo-provider", stdout=out)
    key = next(line.split("=", 1)[1] for line in out.getvalue().splitlines() if line.startswith("TOLLWAY_DEMO_KEY="))
    with LoopbackServer(application, port=port, lifespan="on") as gateway:
        gateway.key = key
        yield gateway


@pytest.fixture
def client(demo) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{demo.url}/v1", api_key=demo.key, max_retries=0)


def test_a_tool_call_round_trip_ends_in_a_text_answer_built_from_the_tool_result(client):
    first = client.chat.completions.create(model="gpt-4o-mini", messages=PARIS, tools=[WEATHER, STOCKS])

    assert first.choices[0].finish_reason == "tool_calls"
    [call] = first.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and call.id.startswith("call_")
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, WEATHER["function"]["parameters"])
    assert arguments["city"] == "Paris"

    result = {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 21, "unit": "celsius"}'}
    final = client.chat.completions.create(
        model="gpt-4o-mini", messages=[*PARIS, first.choices[0].message.model_dump(), result], tools=[WEATHER]
    )

    assert final.choices[0].finish_reason == "stop" and not final.choices[0].message.tool_calls
    assert final.choices[0].message.content == (
        'Here is what I found about Paris: get_weather returned {"temperature": 21, "unit": "celsius"}.'
    )


@pytest.mark.parametrize(
    ("tool_choice", "called"),
    [
        ("none", None),
        ("auto", "get_weather"),
        ("required", "get_weather"),
        ({"type": "function", "function": {"name": "get_stock_price"}}, "get_stock_price"),
    ],
    ids=["none", "auto", "required", "named"],
)
def test_tool_choice_is_respected(client, tool_choice, called):
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=PARIS, tools=[WEATHER, STOCKS], tool_choice=tool_choice
    )

    calls = completion.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ([called] if called else [])
    if called is None:
        assert completion.choices[0].message.content.startswith("Hello from Tollway's demo provider!")


def test_required_calls_a_tool_even_after_a_tool_result_and_auto_does_not(client):
    first = client.chat.completions.create(model="gpt-4o-mini", messages=PARIS, tools=[WEATHER])
    call = first.choices[0].message.tool_calls[0]
    history = [
        *PARIS,
        first.choices[0].message.model_dump(),
        {"role": "tool", "tool_call_id": call.id, "content": "21C"},
    ]

    required = client.chat.completions.create(
        model="gpt-4o-mini", messages=history, tools=[WEATHER], tool_choice="required"
    )
    auto = client.chat.completions.create(model="gpt-4o-mini", messages=history, tools=[WEATHER], tool_choice="auto")

    assert required.choices[0].finish_reason == "tool_calls"
    assert auto.choices[0].finish_reason == "stop"


def test_a_named_function_that_was_not_offered_is_a_400_naming_tool_choice(client):
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=PARIS,
            tools=[WEATHER],
            tool_choice={"type": "function", "function": {"name": "launch_rocket"}},
        )

    assert refused.value.body["param"] == "tool_choice"
    assert "launch_rocket" in refused.value.body["message"]


class Weather(BaseModel):
    city: str
    unit: Literal["celsius", "fahrenheit"]


def test_the_sdks_pydantic_tools_parse_the_arguments(client):
    completion = client.chat.completions.parse(
        model="gpt-4o-mini", messages=PARIS, tools=[openai.pydantic_function_tool(Weather)]
    )

    parsed = completion.choices[0].message.tool_calls[0].function.parsed_arguments
    assert parsed == Weather(city="Paris", unit="celsius")


def test_json_object_mode_answers_a_json_object(client):
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Say hi in JSON"}],
        response_format={"type": "json_object"},
    )

    assert json.loads(completion.choices[0].message.content) == {
        "message": "Hello from Tollway's demo provider! You said: Say hi in JSON",
        "you_said": "Say hi in JSON",
    }


def test_json_schema_mode_answers_an_object_valid_against_the_schema(client):
    response_format = {"type": "json_schema", "json_schema": {"name": "order", "schema": ORDER_SCHEMA, "strict": True}}

    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Where is my order?"}],
        response_format=response_format,
    )

    order = json.loads(completion.choices[0].message.content)
    jsonschema.validate(order, ORDER_SCHEMA, format_checker=jsonschema.FormatChecker())
    assert len(order["items"]) == 2


class Order(BaseModel):
    order_id: str
    status: Literal["pending", "shipped", "delivered"]
    quantities: list[int]


def test_the_sdks_structured_output_parses_into_the_pydantic_model(client):
    completion = client.chat.completions.parse(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "My order?"}], response_format=Order
    )

    assert completion.choices[0].message.parsed == Order(order_id="demo-1", status="pending", quantities=[1])


def test_a_streamed_tool_call_arrives_as_openai_tool_call_deltas(client):
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=PARIS,
            tools=[WEATHER],
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    deltas = [chunk.choices[0].delta for chunk in chunks if chunk.choices]
    opening = deltas[0].tool_calls[0]
    assert (opening.index, opening.type, opening.function.name, opening.function.arguments) == (
        0,
        "function",
        "get_weather",
        "",
    )
    assert opening.id.startswith("call_")
    fragments = [d.tool_calls[0] for d in deltas[1:] if d.tool_calls]
    assert len(fragments) > 1 and all(f.id is None and f.index == 0 for f in fragments)
    arguments = "".join(f.function.arguments for f in fragments)
    jsonschema.validate(json.loads(arguments), WEATHER["function"]["parameters"])
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    # The same request, not streamed, makes the same call.
    whole = client.chat.completions.create(model="gpt-4o-mini", messages=PARIS, tools=[WEATHER])
    assert whole.choices[0].message.tool_calls[0].function.arguments == arguments
    assert whole.choices[0].message.tool_calls[0].id == opening.id


def test_the_sdks_stream_helper_rebuilds_the_tool_call_and_a_json_schema_reply(client):
    with client.chat.completions.stream(model="gpt-4o-mini", messages=PARIS, tools=[WEATHER]) as stream:
        called = stream.get_final_completion()
    response_format = {"type": "json_schema", "json_schema": {"name": "order", "schema": ORDER_SCHEMA}}
    with client.chat.completions.stream(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Order?"}], response_format=response_format
    ) as stream:
        pieces = [event.delta for event in stream if event.type == "content.delta"]
        answered = stream.get_final_completion()

    assert called.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert len(pieces) > 1
    jsonschema.validate(json.loads("".join(pieces)), ORDER_SCHEMA)
    assert answered.choices[0].message.content == "".join(pieces)


def test_the_same_request_gets_the_same_answer(client):
    response_format = {"type": "json_schema", "json_schema": {"name": "order", "schema": ORDER_SCHEMA}}
    asked = {"model": "gpt-4o-mini", "messages": PARIS, "response_format": response_format}

    first, second = client.chat.completions.create(**asked), client.chat.completions.create(**asked)

    assert first.choices[0].message == second.choices[0].message


def test_the_anthropic_sdk_gets_tool_use_and_then_a_final_answer(demo):
    client = anthropic.Anthropic(base_url=demo.url, api_key=demo.key, max_retries=0)
    tool = {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "input_schema": WEATHER["function"]["parameters"],
    }

    message = client.messages.create(model="gpt-4o-mini", max_tokens=200, messages=PARIS, tools=[tool])

    assert message.stop_reason == "tool_use"
    [use] = [block for block in message.content if block.type == "tool_use"]
    assert use.name == "get_weather" and use.input["city"] == "Paris"
    jsonschema.validate(use.input, tool["input_schema"])
    with client.messages.stream(model="gpt-4o-mini", max_tokens=200, messages=PARIS, tools=[tool]) as stream:
        streamed = stream.get_final_message()
    assert [b.input for b in streamed.content if b.type == "tool_use"] == [use.input]

    final = client.messages.create(
        model="gpt-4o-mini",
        max_tokens=200,
        tools=[tool],
        messages=[
            *PARIS,
            {"role": "assistant", "content": [use.model_dump()]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "21 degrees"}]},
        ],
    )
    assert final.stop_reason == "end_turn"
    assert final.content[0].text == "Here is what I found about Paris: get_weather returned 21 degrees."
