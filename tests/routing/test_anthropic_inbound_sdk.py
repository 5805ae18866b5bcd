"""What the inbound /v1/messages translation produces, read back by the official `anthropic` SDK.

A loopback server replays the encoder's events (or a translated reply), and the SDK's own parsing and stream
accumulation must rebuild the expected Message: proof that the shapes and event order are what it expects.
"""

import anthropic
import pytest

from core.values import TokenUsage
from routing.proxy.anthropic_messages import to_anthropic_message, to_openai_request
from routing.proxy.anthropic_stream import AnthropicStreamEncoder
from tests.upstreams.server import LoopbackServer, RequestLog, read_body, send_json, send_sse

WEATHER_TOOL = {
    "name": "get_weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def anyio_backend():
    return "asyncio"


def chunk(delta: dict | None = None, *, finish_reason: str | None = None, usage: dict | None = None) -> dict:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-test"}
    if usage is not None:
        return {**base, "choices": [], "usage": usage}
    return {**base, "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason}]}


def tool_call(index: int, arguments: str, *, call_id: str | None = None) -> dict:
    call: dict = {"index": index, "function": {"arguments": arguments}}
    if call_id:
        call.update(id=call_id, type="function")
        call["function"]["name"] = "get_weather"
    return {"tool_calls": [call]}


TEXT_CHUNKS = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Hello"}),
    chunk({"content": " there"}),
    chunk(finish_reason="stop"),
    chunk(usage={"prompt_tokens": 20, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 8}}),
]

TOOL_CHUNKS = [
    chunk({"role": "assistant", "content": "Checking."}),
    chunk(tool_call(0, "", call_id="call_a")),
    chunk(tool_call(0, '{"city":')),
    chunk(tool_call(0, '"Oslo"}')),
    chunk(tool_call(1, '{"city":"Rome"}', call_id="call_b")),
    chunk(finish_reason="tool_calls"),
]


def encode(chunks: list[dict], usage: TokenUsage | None = None) -> list[bytes]:
    encoder = AnthropicStreamEncoder(model="claude-alias", message_id="msg_test")
    events = [event for c in chunks for event in encoder.feed(c)]
    return events + encoder.finish(usage)


class ReplayApp:
    """Answers every request with a canned JSON body or SSE events, recording what the SDK sent."""

    def __init__(self, *, body: dict | None = None, events: list[bytes] | None = None) -> None:
        self.body, self.events, self.log = body, events, RequestLog()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        self.log.record(scope, await read_body(receive))
        if self.events is not None:
            return await send_sse(send, self.events)
        return await send_json(send, 200, self.body)


def sdk_client(server: LoopbackServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="sk-gateway-key", max_retries=0)


def test_the_sdk_accumulates_the_encoded_text_stream_into_the_same_message():
    app = ReplayApp(events=encode(TEXT_CHUNKS))
    with LoopbackServer(app) as server:
        with sdk_client(server).messages.stream(model="claude-alias", max_tokens=64, messages=HI) as stream:
            texts = list(stream.text_stream)
            message = stream.get_final_message()

    assert texts == ["Hello", " there"]
    assert message.id == "msg_test"
    assert message.model == "claude-alias"
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "Hello there"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 7)
    assert message.usage.cache_read_input_tokens == 8
    assert to_openai_request(app.log.last["json"])["stream"] is True  # the SDK's own request translates too


def test_the_sdk_accumulates_encoded_tool_calls_into_tool_use_blocks():
    app = ReplayApp(events=encode(TOOL_CHUNKS))
    with LoopbackServer(app) as server:
        with sdk_client(server).messages.stream(
            model="claude-alias",
            max_tokens=64,
            messages=[{"role": "user", "content": "Weather?"}],
            tools=[WEATHER_TOOL],
        ) as stream:
            message = stream.get_final_message()

    assert message.stop_reason == "tool_use"
    assert message.content[0].text == "Checking."
    tool_uses = [(block.id, block.name, block.input) for block in message.content[1:]]
    assert tool_uses == [("call_a", "get_weather", {"city": "Oslo"}), ("call_b", "get_weather", {"city": "Rome"})]


def test_the_sdk_raises_on_an_encoded_error_event():
    encoder = AnthropicStreamEncoder(model="claude-alias", message_id="msg_err")
    events = encoder.feed(chunk({"content": "Part"})) + encoder.error("overloaded_error", "Overloaded")
    app = ReplayApp(events=events)

    with LoopbackServer(app) as server:
        with pytest.raises(anthropic.APIStatusError) as raised:
            with sdk_client(server).messages.stream(model="claude-alias", max_tokens=64, messages=HI) as stream:
                stream.get_final_message()

    assert raised.value.body == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert encoder.finish(None) == []


def test_the_sdk_parses_a_translated_reply_as_a_message():
    calls = [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]
    completion = {
        "id": "chatcmpl-2",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Sure.", "tool_calls": calls},
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3},
    }
    app = ReplayApp(body=to_anthropic_message(completion, model="claude-alias"))

    with LoopbackServer(app) as server:
        message = sdk_client(server).messages.create(
            model="claude-alias", max_tokens=64, messages=HI, tools=[WEATHER_TOOL]
        )

    assert isinstance(message, anthropic.types.Message)
    assert [block.type for block in message.content] == ["text", "tool_use"]
    assert message.content[1].input == {"city": "Oslo"}
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (10, 3)
