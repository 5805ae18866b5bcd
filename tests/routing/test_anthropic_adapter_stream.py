"""AnthropicAdapter's streams: Anthropic SSE events from a loopback server become OpenAI chunks as they arrive."""

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
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
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


def target_for(upstream: AnthropicUpstream, model: str = "claude-test") -> Target:
    price = ModelPrice(input_per_million=Decimal("3"), output_per_million=Decimal("15"))
    return Target(
        deployment="claude-deployment",
        provider="anthropic",
        kind="anthropic",
        base_url=upstream.base_url,
        model=model,
        price=price,
        api_key=API_KEY,
    )


def ask(**extra) -> dict:
    return {"model": "alias-the-client-used", "messages": [{"role": "user", "content": "Hi"}], **extra}


async def collect(stream) -> list[dict]:
    return [chunk async for chunk in stream]


@pytest.mark.anyio
async def test_a_stream_yields_role_then_text_then_finish_then_exact_usage(upstream, client):
    stream = await adapter.open_chat_stream(client, target_for(upstream), ask())
    chunks = await collect(stream)

    assert upstream.log.last["json"]["stream"] is True
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(chunk["object"] == "chat.completion.chunk" and chunk["id"] == wire.MESSAGE_ID for chunk in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "".join(wire.STREAM_PIECES)
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": wire.STREAM_OUTPUT_TOKENS,
        "total_tokens": PROMPT_TOKENS + wire.STREAM_OUTPUT_TOKENS,
        "prompt_tokens_details": {"cached_tokens": wire.CACHE_READ_INPUT_TOKENS},
    }
    assert stream.usage == TokenUsage(
        prompt_tokens=PROMPT_TOKENS,
        completion_tokens=wire.STREAM_OUTPUT_TOKENS,
        cached_tokens=wire.CACHE_READ_INPUT_TOKENS,
    )


@pytest.mark.anyio
async def test_a_streamed_tool_call_arrives_as_openai_tool_call_deltas(upstream, client):
    stream = await adapter.open_chat_stream(
        client, target_for(upstream, model="claude-tools"), ask(tools=[WEATHER_TOOL])
    )
    chunks = await collect(stream)

    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    call_deltas = [call for delta in deltas for call in delta.get("tool_calls") or []]
    assert call_deltas[0] == {
        "index": 0,
        "id": wire.TOOL_USE_ID,
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert all(call["index"] == 0 for call in call_deltas)
    assert [call["function"]["arguments"] for call in call_deltas[1:]] == wire.TOOL_INPUT_FRAGMENTS
    assert orjson.loads("".join(wire.TOOL_INPUT_FRAGMENTS)) == wire.TOOL_INPUT
    assert "".join(delta.get("content") or "" for delta in deltas) == wire.TOOL_PREAMBLE
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert stream.usage.completion_tokens == wire.STREAM_OUTPUT_TOKENS


@pytest.mark.anyio
async def test_an_error_event_mid_stream_raises_an_upstream_error_that_is_not_retried(upstream, client):
    stream = await adapter.open_chat_stream(client, target_for(upstream, model="claude-stream-error"), ask())
    texts = []

    with pytest.raises(UpstreamError) as raised:
        async for chunk in stream:
            texts.append(chunk["choices"][0]["delta"].get("content") or "")

    assert "".join(texts) == "".join(wire.STREAM_ERROR_PIECES)
    assert raised.value.message == "Overloaded"
    assert (raised.value.status, raised.value.error_type, raised.value.code) == (
        529,
        "server_error",
        "overloaded_error",
    )
    assert raised.value.is_retryable is False
    assert stream.usage is None


@pytest.mark.anyio
async def test_a_stream_cut_off_before_message_stop_raises_instead_of_ending_quietly(upstream, client):
    stream = await adapter.open_chat_stream(client, target_for(upstream, model="claude-truncated"), ask())
    chunks = []

    with pytest.raises(UpstreamError) as raised:
        async for chunk in stream:
            chunks.append(chunk)

    assert "before message_stop" in raised.value.message
    assert raised.value.is_retryable is False
    assert all(chunk["choices"] and chunk["choices"][0]["finish_reason"] is None for chunk in chunks)
