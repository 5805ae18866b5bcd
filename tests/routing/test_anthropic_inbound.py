"""The inbound /v1/messages translation: Anthropic requests to OpenAI, OpenAI replies and chunks back to Anthropic.

test_anthropic_inbound_sdk.py reads the same output with the official `anthropic` SDK.
"""

import orjson
import pytest

from core.values import TokenUsage
from routing.proxy.anthropic_messages import (
    InvalidMessagesRequest,
    anthropic_error_body,
    error_type_for_status,
    to_anthropic_message,
    to_openai_request,
)
from routing.proxy.anthropic_stream import AnthropicStreamEncoder

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
def anyio_backend():
    return "asyncio"


def request(*messages, **extra) -> dict:
    return {"model": "claude-alias", "max_tokens": 256, "messages": list(messages), **extra}


def user(content) -> dict:
    return {"role": "user", "content": content}


def chunk(delta: dict | None = None, *, finish_reason: str | None = None, usage: dict | None = None) -> dict:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-test"}
    if usage is not None:
        return {**base, "choices": [], "usage": usage}
    return {**base, "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason}]}


def tool_call_delta(index: int, *, arguments: str, call_id: str | None = None, name: str | None = None) -> dict:
    call: dict = {"index": index, "function": {"arguments": arguments}}
    if call_id:
        call.update(id=call_id, type="function")
        call["function"]["name"] = name
    return {"tool_calls": [call]}


def parse_sse(events: list[bytes]) -> list[tuple[str, dict]]:
    parsed = []
    for raw in events:
        name_line, data_line = raw.decode().strip().split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: ")
        payload = orjson.loads(data_line.removeprefix("data: "))
        assert payload["type"] == name_line.removeprefix("event: ")
        parsed.append((payload["type"], payload))
    return parsed


TEXT_CHUNKS = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Hello"}),
    chunk({"content": " there"}),
    chunk(finish_reason="stop"),
    chunk(usage={"prompt_tokens": 20, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 8}}),
]

TOOL_CHUNKS = [
    chunk({"role": "assistant", "content": "Checking."}),
    chunk(tool_call_delta(0, arguments="", call_id="call_a", name="get_weather")),
    chunk(tool_call_delta(0, arguments='{"city":')),
    chunk(tool_call_delta(0, arguments='"Oslo"}')),
    chunk(tool_call_delta(1, arguments='{"city":"Rome"}', call_id="call_b", name="get_weather")),
    chunk(finish_reason="tool_calls"),
]


def encode(chunks: list[dict], usage: TokenUsage | None = None) -> list[bytes]:
    encoder = AnthropicStreamEncoder(model="claude-alias", message_id="msg_test")
    events = [event for c in chunks for event in encoder.feed(c)]
    return events + encoder.finish(usage)


# --- requests ---


def test_a_plain_request_becomes_an_openai_chat_request():
    body = request(
        user("Hi"),
        system="Be brief.",
        temperature=0.2,
        top_p=0.8,
        top_k=40,
        stop_sequences=["END"],
        metadata={"user_id": "user-7"},
        stream=True,
    )

    assert to_openai_request(body) == {
        "model": "claude-alias",
        "max_tokens": 256,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "temperature": 0.2,
        "top_p": 0.8,
        "stop": ["END"],
        "user": "user-7",
        "stream": True,
    }


def test_system_blocks_are_joined_into_one_system_message():
    system = [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind.", "cache_control": {}}]

    messages = to_openai_request(request(user("Hi"), system=system))["messages"]

    assert messages[0] == {"role": "system", "content": "Be brief.\nBe kind."}


def test_image_blocks_become_image_url_parts():
    content = [
        {"type": "text", "text": "What are these?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/dog.png"}},
    ]

    messages = to_openai_request(request(user(content)))["messages"]

    assert messages == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What are these?"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/dog.png"}},
            ],
        }
    ]


def test_tool_use_and_tool_result_blocks_become_tool_calls_and_tool_messages():
    body = request(
        user("Weather in Oslo?"),
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "I should call the tool.", "signature": "sig"},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
            ],
        },
        user(
            [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "-3C"}]},
                {"type": "text", "text": "Is that cold?"},
            ]
        ),
        user([{"type": "tool_result", "tool_use_id": "toolu_2", "content": "timeout", "is_error": True}]),
    )

    messages = to_openai_request(body)["messages"]

    assert messages[1:] == [
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "-3C"},
        {"role": "user", "content": "Is that cold?"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: timeout"},
    ]


@pytest.mark.parametrize(
    ("tool_choice", "expected_choice", "expected_parallel"),
    [
        ({"type": "auto"}, "auto", None),
        ({"type": "any", "disable_parallel_tool_use": True}, "required", False),
        ({"type": "tool", "name": "get_weather"}, {"type": "function", "function": {"name": "get_weather"}}, None),
        ({"type": "none"}, "none", None),
    ],
)
def test_tools_and_tool_choice_are_translated(tool_choice, expected_choice, expected_parallel):
    translated = to_openai_request(request(user("Hi"), tools=[WEATHER_TOOL], tool_choice=tool_choice))

    assert translated["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER_TOOL["input_schema"],
                "description": "Current weather in a city",
            },
        }
    ]
    assert translated["tool_choice"] == expected_choice
    assert translated.get("parallel_tool_calls") == expected_parallel


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "claude-alias", "messages": [user("Hi")]}, "max_tokens"),
        ({"model": "claude-alias", "max_tokens": 0, "messages": [user("Hi")]}, "max_tokens"),
        ({"model": "claude-alias", "max_tokens": 10, "messages": {"role": "user"}}, "messages"),
        (request({"role": "system", "content": "Be brief."}), "messages.0.role"),
        (request(user([{"type": "mystery", "data": 1}])), "messages.0.content.0"),
        (request(user([{"type": "image", "source": {"type": "file", "file_id": "f"}}])), "messages.0.content.0.source"),
        (request(user("Hi"), tools=[{"type": "web_search_20250305", "name": "web_search"}]), "tools.0"),
    ],
    ids=[
        "no-max-tokens",
        "zero-max-tokens",
        "messages-not-a-list",
        "system-role",
        "unknown-block",
        "file-image",
        "server-tool",
    ],
)
def test_an_invalid_request_is_refused_naming_the_offending_param(body, param):
    with pytest.raises(InvalidMessagesRequest) as raised:
        to_openai_request(body)

    assert raised.value.param == param
    assert isinstance(raised.value, ValueError)
    assert (raised.value.status, raised.value.error_type) == (400, "invalid_request_error")


def test_a_missing_max_tokens_is_reported_as_a_required_field_like_anthropic_does():
    with pytest.raises(InvalidMessagesRequest) as raised:
        to_openai_request({"model": "claude-alias", "messages": [user("Hi")]})

    assert raised.value.message == "max_tokens: Field required"


# --- replies and errors ---


def test_an_openai_completion_becomes_an_anthropic_message():
    completion = {
        "id": "chatcmpl-9",
        "object": "chat.completion",
        "model": "gpt-test",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 12}},
    }

    message = to_anthropic_message(completion, model="claude-alias")

    assert message["id"].startswith("msg_")
    assert {k: v for k, v in message.items() if k != "id"} == {
        "type": "message",
        "role": "assistant",
        "model": "claude-alias",
        "content": [{"type": "text", "text": "Hello!"}],
        "stop_reason": "max_tokens",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 18,
            "output_tokens": 5,
            "cache_read_input_tokens": 12,
            "cache_creation_input_tokens": 0,
        },
    }


def test_tool_calls_become_tool_use_blocks_with_parsed_input():
    calls = [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]
    completion = {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "tool_calls": calls},
                "finish_reason": "tool_calls",
            }
        ]
    }

    message = to_anthropic_message(
        completion, model="claude-alias", usage=TokenUsage(prompt_tokens=4, completion_tokens=2)
    )

    assert message["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Oslo"}}
    ]
    assert message["stop_reason"] == "tool_use"
    assert (message["usage"]["input_tokens"], message["usage"]["output_tokens"]) == (4, 2)


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (504, "api_error"),
        (529, "overloaded_error"),
    ],
)
def test_http_statuses_map_to_anthropic_error_types(status, error_type):
    assert error_type_for_status(status) == error_type


def test_an_error_body_has_anthropics_shape():
    assert anthropic_error_body("rate_limit_error", "Slow down.") == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Slow down."},
    }


# --- the stream encoder ---


def test_the_encoder_emits_anthropics_event_sequence_for_a_text_reply():
    events = parse_sse(encode(TEXT_CHUNKS))

    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0][1]["message"]["id"] == "msg_test"
    assert events[1][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert [e["delta"]["text"] for name, e in events if name == "content_block_delta"] == ["Hello", " there"]
    assert events[5][1]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert events[5][1]["usage"]["output_tokens"] == 7
    assert events[5][1]["usage"]["input_tokens"] == 12


def test_the_encoder_opens_one_block_per_tool_call_after_the_text():
    events = parse_sse(encode(TOOL_CHUNKS))

    starts = [e for name, e in events if name == "content_block_start"]
    assert [(s["index"], s["content_block"]["type"]) for s in starts] == [(0, "text"), (1, "tool_use"), (2, "tool_use")]
    assert starts[1]["content_block"] == {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {}}
    deltas = [(e["index"], e["delta"]) for name, e in events if name == "content_block_delta"]
    assert deltas[0] == (0, {"type": "text_delta", "text": "Checking."})
    json_deltas = [(index, delta["partial_json"]) for index, delta in deltas[1:]]
    assert json_deltas == [(1, '{"city":'), (1, '"Oslo"}'), (2, '{"city":"Rome"}')]
    assert [e["index"] for name, e in events if name == "content_block_stop"] == [0, 1, 2]
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_usage_given_to_finish_wins_over_the_streamed_usage():
    events = parse_sse(encode(TEXT_CHUNKS, usage=TokenUsage(prompt_tokens=50, completion_tokens=9)))

    assert events[-2][1]["usage"]["output_tokens"] == 9
    assert events[-2][1]["usage"]["input_tokens"] == 50


def test_an_empty_stream_still_starts_and_stops_the_message():
    encoder = AnthropicStreamEncoder(model="claude-alias", message_id="msg_empty")

    names = [name for name, _ in parse_sse(encoder.finish(None))]

    assert names == ["message_start", "message_delta", "message_stop"]
    assert encoder.finish(None) == []
