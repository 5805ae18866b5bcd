"""AnthropicAdapter against a loopback server speaking Anthropic's wire format, through a real httpx client."""

from decimal import Decimal

import httpx
import orjson
import pytest

from core.errors import UpstreamError
from core.values import ModelPrice, Target, TokenUsage
from routing.providers.anthropic import AnthropicAdapter
from tests.upstreams import anthropic_server as wire
from tests.upstreams.anthropic_server import AnthropicUpstream
from tests.upstreams.server import LoopbackServer

API_KEY = "sk-ant-test-key"
PROMPT_TOKENS = wire.INPUT_TOKENS + wire.CACHE_READ_INPUT_TOKENS + wire.CACHE_CREATION_INPUT_TOKENS
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}

adapter = AnthropicAdapter()


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
def upstream():
    app = AnthropicUpstream(api_key=API_KEY)
    with LoopbackServer(app) as server:
        app.base_url = f"{server.url}/v1"
        yield app


@pytest.fixture
async def client():
    async with httpx.AsyncClient() as client:
        yield client


def target_for(upstream: AnthropicUpstream, model: str = "claude-test", **overrides) -> Target:
    fields = {
        "deployment": "claude-deployment",
        "provider": "anthropic",
        "kind": "anthropic",
        "base_url": upstream.base_url,
        "model": model,
        "price": ModelPrice(input_per_million=Decimal("3"), output_per_million=Decimal("15")),
        "api_key": API_KEY,
    }
    return Target(**{**fields, **overrides})


def ask(text: str = "Hi", **extra) -> dict:
    return {"model": "alias-the-client-used", "messages": [{"role": "user", "content": text}], **extra}


# --- non-streamed replies ---


@pytest.mark.anyio
async def test_a_text_reply_comes_back_as_an_openai_chat_completion(upstream, client):
    result = await adapter.chat(client, target_for(upstream), ask())

    assert result.body["object"] == "chat.completion"
    assert result.body["id"] == wire.MESSAGE_ID
    assert result.body["model"] == "claude-test"
    choice = result.body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": wire.REPLY}
    assert choice["finish_reason"] == "stop"


@pytest.mark.anyio
async def test_cached_input_is_counted_inside_prompt_tokens(upstream, client):
    result = await adapter.chat(client, target_for(upstream), ask())

    assert result.usage == TokenUsage(
        prompt_tokens=PROMPT_TOKENS, completion_tokens=wire.OUTPUT_TOKENS, cached_tokens=wire.CACHE_READ_INPUT_TOKENS
    )
    assert result.body["usage"] == {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": wire.OUTPUT_TOKENS,
        "total_tokens": PROMPT_TOKENS + wire.OUTPUT_TOKENS,
        "prompt_tokens_details": {"cached_tokens": wire.CACHE_READ_INPUT_TOKENS},
    }


@pytest.mark.anyio
async def test_the_request_goes_to_messages_with_anthropic_headers_and_the_upstream_model(upstream, client):
    target = target_for(upstream, extra_headers=(("anthropic-beta", "test-beta"),))

    await adapter.chat(client, target, ask())

    sent = upstream.log.last
    assert sent["path"] == "/v1/messages"
    assert sent["headers"]["x-api-key"] == API_KEY
    assert sent["headers"]["anthropic-version"] == "2023-06-01"
    assert sent["headers"]["anthropic-beta"] == "test-beta"
    assert "authorization" not in sent["headers"]
    assert sent["json"]["model"] == "claude-test"
    assert "stream" not in sent["json"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("extra", "max_output_tokens", "expected"),
    [
        ({"max_completion_tokens": 300}, 1000, 300),
        ({"max_tokens": 200}, None, 200),
        ({}, 1000, 1000),
        ({}, None, 4096),
    ],
)
async def test_max_tokens_comes_from_the_request_or_the_target_or_a_default(
    upstream, client, extra, max_output_tokens, expected
):
    await adapter.chat(client, target_for(upstream, max_output_tokens=max_output_tokens), ask(**extra))

    assert upstream.log.last["json"]["max_tokens"] == expected


@pytest.mark.anyio
async def test_system_and_developer_messages_become_the_system_prompt(upstream, client):
    body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": "Hi"},
        ]
    }

    await adapter.chat(client, target_for(upstream), body)

    sent = upstream.log.last["json"]
    assert sent["system"] == "Be brief.\n\nAnswer in French."
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]


@pytest.mark.anyio
async def test_sampling_options_stop_and_user_are_translated(upstream, client):
    await adapter.chat(client, target_for(upstream), ask(temperature=0.3, top_p=0.9, stop="END", user="user-42"))

    sent = upstream.log.last["json"]
    assert (sent["temperature"], sent["top_p"]) == (0.3, 0.9)
    assert sent["stop_sequences"] == ["END"]
    assert sent["metadata"] == {"user_id": "user-42"}


@pytest.mark.anyio
async def test_json_mode_is_asked_for_in_the_system_prompt(upstream, client):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    response_format = {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}

    await adapter.chat(client, target_for(upstream), ask(response_format=response_format))

    system = upstream.log.last["json"]["system"]
    assert "JSON object" in system
    assert orjson.dumps(schema).decode() in system


@pytest.mark.anyio
async def test_images_become_base64_or_url_image_sources(upstream, client):
    content = [
        {"type": "text", "text": "Compare these."},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}},
    ]

    await adapter.chat(client, target_for(upstream), {"messages": [{"role": "user", "content": content}]})

    assert upstream.log.last["json"]["messages"][0]["content"] == [
        {"type": "text", "text": "Compare these."},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


@pytest.mark.anyio
async def test_consecutive_user_messages_are_merged_into_one_turn(upstream, client):
    body = {"messages": [{"role": "user", "content": "First."}, {"role": "user", "content": "Second."}]}

    await adapter.chat(client, target_for(upstream), body)

    assert upstream.log.last["json"]["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "First."}, {"type": "text", "text": "Second."}]}
    ]


@pytest.mark.anyio
async def test_a_max_tokens_stop_is_reported_as_length(upstream, client):
    result = await adapter.chat(client, target_for(upstream, model="claude-max-tokens"), ask())

    assert result.body["choices"][0]["finish_reason"] == "length"


# --- tools ---


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        (None, {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
    ],
)
async def test_offered_tools_and_tool_choice_are_translated(upstream, client, tool_choice, expected):
    await adapter.chat(client, target_for(upstream), ask(tools=[WEATHER_TOOL], tool_choice=tool_choice))

    sent = upstream.log.last["json"]
    assert sent["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather in a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
        }
    ]
    assert sent["tool_choice"] == expected


@pytest.mark.anyio
async def test_a_tool_call_reply_has_its_arguments_as_a_json_string(upstream, client):
    result = await adapter.chat(client, target_for(upstream, model="claude-tools"), ask(tools=[WEATHER_TOOL]))

    choice = result.body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == wire.TOOL_PREAMBLE
    [call] = choice["message"]["tool_calls"]
    assert (call["id"], call["type"], call["function"]["name"]) == (wire.TOOL_USE_ID, "function", "get_weather")
    assert orjson.loads(call["function"]["arguments"]) == wire.TOOL_INPUT


@pytest.mark.anyio
async def test_tool_calls_and_their_results_go_back_as_tool_use_and_one_user_turn_of_tool_results(upstream, client):
    calls = [
        {"id": "toolu_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
        {"id": "toolu_b", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}},
    ]
    body = {
        "tools": [WEATHER_TOOL],
        "messages": [
            {"role": "user", "content": "Weather in Oslo and Rome?"},
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": "toolu_a", "content": "-3C"},
            {"role": "tool", "tool_call_id": "toolu_b", "content": "18C"},
            {"role": "user", "content": "And which is warmer?"},
        ],
    }

    result = await adapter.chat(client, target_for(upstream), body)

    assert result.body["choices"][0]["message"]["content"] == wire.REPLY  # the upstream accepted the pairing
    assert upstream.log.last["json"]["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Oslo"}},
                {"type": "tool_use", "id": "toolu_b", "name": "get_weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "-3C"},
                {"type": "tool_result", "tool_use_id": "toolu_b", "content": "18C"},
                {"type": "text", "text": "And which is warmer?"},
            ],
        },
    ]


@pytest.mark.anyio
async def test_tool_results_are_put_before_text_in_their_user_turn(upstream, client):
    call = {"id": "toolu_c", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    body = {
        "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "user", "content": "Use Celsius."},
            {"role": "tool", "tool_call_id": "toolu_c", "content": "12C"},
        ],
    }

    await adapter.chat(client, target_for(upstream), body)

    assert upstream.log.last["json"]["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_c", "content": "12C"},
            {"type": "text", "text": "Use Celsius."},
        ],
    }


# --- errors ---

ERROR_SCENARIOS = [
    ("claude-fail-500", 500, "server_error", "api_error", True, "Internal server error"),
    ("claude-overloaded", 529, "server_error", "overloaded_error", True, "Overloaded"),
    ("claude-rate-limit", 429, "rate_limit_error", "rate_limit_error", True, "exceed the rate limit"),
    ("claude-bad-request", 400, "invalid_request_error", "invalid_request_error", False, "temperature: range: 0..1"),
]


@pytest.mark.anyio
@pytest.mark.parametrize("is_stream", [False, True], ids=["chat", "stream"])
@pytest.mark.parametrize(("model", "status", "error_type", "code", "is_retryable", "message"), ERROR_SCENARIOS)
async def test_anthropic_errors_keep_their_status_message_and_retryability(
    upstream, client, is_stream, model, status, error_type, code, is_retryable, message
):
    call = adapter.open_chat_stream if is_stream else adapter.chat

    with pytest.raises(UpstreamError) as raised:
        await call(client, target_for(upstream, model=model), ask())

    error = raised.value
    assert (error.status, error.error_type, error.code, error.is_retryable) == (status, error_type, code, is_retryable)
    assert message in error.message


@pytest.mark.anyio
async def test_a_rate_limit_passes_on_retry_after(upstream, client):
    with pytest.raises(UpstreamError) as raised:
        await adapter.chat(client, target_for(upstream, model="claude-rate-limit"), ask())

    assert raised.value.retry_after == "7"


@pytest.mark.anyio
async def test_a_wrong_api_key_is_an_authentication_error_that_is_not_retried(upstream, client):
    with pytest.raises(UpstreamError) as raised:
        await adapter.chat(client, target_for(upstream, api_key="sk-ant-wrong"), ask())

    error = raised.value
    assert (error.status, error.error_type, error.is_retryable) == (401, "authentication_error", False)
    assert error.message == "invalid x-api-key"


@pytest.mark.anyio
async def test_a_slow_upstream_times_out_without_being_retried(upstream, client):
    with pytest.raises(UpstreamError) as raised:
        await adapter.chat(client, target_for(upstream, model="claude-slow", timeout_s=0.5), ask())

    assert raised.value.is_timeout is True
    assert raised.value.is_retryable is False


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "param"),
    [
        (ask(n=2), "n"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
            "messages[0].content[0]",
        ),
        (ask(tools=[{"type": "custom", "custom": {"name": "x"}}]), "tools[0]"),
    ],
    ids=["several-choices", "audio", "non-function-tool"],
)
async def test_a_request_anthropic_cannot_express_is_refused_before_anything_is_sent(upstream, client, body, param):
    sent_before = len(upstream.log.requests)

    with pytest.raises(UpstreamError) as raised:
        await adapter.chat(client, target_for(upstream), body)

    assert (raised.value.status, raised.value.error_type, raised.value.param) == (400, "invalid_request_error", param)
    assert raised.value.is_retryable is False
    assert len(upstream.log.requests) == sent_before


@pytest.mark.anyio
async def test_embeddings_are_refused_without_calling_the_upstream(upstream, client):
    sent_before = len(upstream.log.requests)

    with pytest.raises(UpstreamError) as raised:
        await adapter.embeddings(client, target_for(upstream), {"model": "x", "input": "hello"})

    assert (raised.value.status, raised.value.error_type, raised.value.is_retryable) == (
        400,
        "invalid_request_error",
        False,
    )
    assert "no embeddings" in raised.value.message
    assert len(upstream.log.requests) == sent_before
