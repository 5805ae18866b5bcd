"""GeminiAdapter against a loopback server that speaks Gemini's wire format (tests/upstreams/gemini_server.py)."""

import base64
import struct
from decimal import Decimal

import httpx
import pytest

from core.errors import UpstreamError
from core.values import ModelPrice, Target, TokenUsage
from routing.providers.gemini import GeminiAdapter
from tests.upstreams import gemini_server as gemini
from tests.upstreams.server import LoopbackServer

pytestmark = pytest.mark.anyio

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": ["string", "null"], "enum": ["C", "F"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
FULL_USAGE = TokenUsage(
    prompt_tokens=gemini.PROMPT_TOKENS,
    completion_tokens=gemini.CANDIDATES_TOKENS + gemini.THOUGHTS_TOKENS,
    cached_tokens=gemini.CACHED_TOKENS,
)


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
def server():
    app = gemini.GeminiUpstream()
    with LoopbackServer(app) as running:
        running.app = app
        yield running


@pytest.fixture
def received(server):
    server.app.log.requests.clear()
    return server.app.log


@pytest.fixture
async def client():
    async with httpx.AsyncClient(trust_env=False) as http_client:
        yield http_client


def target_for(server, model: str = "gemini-test", *, api_key: str = gemini.API_KEY) -> Target:
    return Target(
        deployment=f"google-{model}",
        provider="google",
        kind="gemini",
        base_url=f"{server.url}/v1beta",
        model=model,
        price=ModelPrice(input_per_million=Decimal("0.30"), output_per_million=Decimal("2.50")),
        api_key=api_key,
    )


def chat_body(*messages: dict, **extra) -> dict:
    return {"model": "anything", "messages": list(messages) or [{"role": "user", "content": "Hi"}], **extra}


async def test_a_text_reply_comes_back_as_an_openai_chat_completion_with_exact_usage(server, received, client):
    result = await GeminiAdapter().chat(client, target_for(server), chat_body())

    assert result.body["object"] == "chat.completion"
    assert result.body["id"] == f"chatcmpl-{gemini.RESPONSE_ID}"
    assert result.body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": gemini.REPLY, "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert result.usage == FULL_USAGE
    assert result.body["usage"] == {
        "prompt_tokens": 11,
        "completion_tokens": 10,
        "total_tokens": 21,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 3},
    }
    assert received.last["path"] == "/v1beta/models/gemini-test:generateContent"
    assert received.last["headers"]["x-goog-api-key"] == gemini.API_KEY
    assert received.last["json"] == {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}


async def test_system_and_developer_messages_become_the_system_instruction_and_turns_alternate(
    server, received, client
):
    body = chat_body(
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Bonjour."},
        {"role": "user", "content": "Again"},
    )

    await GeminiAdapter().chat(client, target_for(server), body)

    sent = received.last["json"]
    assert sent["systemInstruction"] == {"parts": [{"text": "Be brief."}, {"text": "Answer in French."}]}
    assert sent["contents"] == [
        {"role": "user", "parts": [{"text": "Hi"}]},
        {"role": "model", "parts": [{"text": "Bonjour."}]},
        {"role": "user", "parts": [{"text": "Again"}]},
    ]


async def test_sampling_parameters_and_json_schema_are_translated_into_generation_config(server, received, client):
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": ["integer", "null"]}},
        "required": ["name"],
        "additionalProperties": False,
    }
    body = chat_body(
        max_completion_tokens=64,
        temperature=0.2,
        top_p=0.9,
        stop="END",
        n=2,
        seed=7,
        presence_penalty=0,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}},
    )

    result = await GeminiAdapter().chat(client, target_for(server), body)

    assert received.last["json"]["generationConfig"] == {
        "maxOutputTokens": 64,
        "temperature": 0.2,
        "topP": 0.9,
        "seed": 7,
        "stopSequences": ["END"],
        "candidateCount": 2,
        "responseMimeType": "application/json",
        "responseSchema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer", "nullable": True}},
            "required": ["name"],
        },
    }
    assert [choice["index"] for choice in result.body["choices"]] == [0, 1]


async def test_json_object_mode_asks_for_a_json_mime_type(server, received, client):
    await GeminiAdapter().chat(client, target_for(server), chat_body(response_format={"type": "json_object"}))

    assert received.last["json"]["generationConfig"] == {"responseMimeType": "application/json"}


async def test_a_data_url_image_is_sent_as_inline_data(server, received, client):
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
    ]

    await GeminiAdapter().chat(client, target_for(server), chat_body({"role": "user", "content": content}))

    assert received.last["json"]["contents"][0]["parts"] == [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
    ]


async def test_tools_go_out_as_function_declarations_and_a_function_call_comes_back_as_a_tool_call(
    server, received, client
):
    body = chat_body(tools=[WEATHER_TOOL], tool_choice={"type": "function", "function": {"name": "get_weather"}})

    result = await GeminiAdapter().chat(client, target_for(server, "gemini-tools"), body)

    sent = received.last["json"]
    assert sent["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Current weather in a city.",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "city": {"type": "string"},
                            "unit": {"type": "string", "nullable": True, "enum": ["C", "F"]},
                        },
                        "required": ["city"],
                    },
                }
            ]
        }
    ]
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
    choice = result.body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["id"].startswith("call_")
    assert call["type"] == "function"
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}


@pytest.mark.parametrize(("tool_choice", "mode"), [("none", "NONE"), ("auto", "AUTO"), ("required", "ANY")])
async def test_tool_choice_strings_become_function_calling_modes(server, received, client, tool_choice, mode):
    await GeminiAdapter().chat(client, target_for(server), chat_body(tools=[WEATHER_TOOL], tool_choice=tool_choice))

    assert received.last["json"]["toolConfig"] == {"functionCallingConfig": {"mode": mode}}


async def test_a_tool_result_goes_back_as_a_function_response_named_after_its_call_with_the_signature(
    server, received, client
):
    adapter, target = GeminiAdapter(), target_for(server, "gemini-tools")
    question = {"role": "user", "content": "Weather in Paris?"}
    first = await adapter.chat(client, target, chat_body(question, tools=[WEATHER_TOOL]))
    assistant = first.body["choices"][0]["message"]
    call_id = assistant["tool_calls"][0]["id"]

    tool_result = {"role": "tool", "tool_call_id": call_id, "content": '{"temperature": 21}'}
    second = await adapter.chat(client, target, chat_body(question, assistant, tool_result, tools=[WEATHER_TOOL]))

    assert received.last["json"]["contents"][1:] == [
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                    "thoughtSignature": gemini.THOUGHT_SIGNATURE,
                }
            ],
        },
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temperature": 21}}}]},
    ]
    assert second.body["choices"][0]["message"]["content"] == gemini.TOOL_RESULT_REPLY
    assert second.body["choices"][0]["finish_reason"] == "stop"


async def test_parallel_tool_results_are_sent_as_one_turn_and_plain_text_results_are_wrapped(server, received, client):
    calls = [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]
    body = chat_body(
        {"role": "user", "content": "Weather and time?"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_b", "content": "12:00"},
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
    )

    await GeminiAdapter().chat(client, target_for(server), body)

    assert received.last["json"]["contents"][2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_time", "response": {"output": "12:00"}}},
            {"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}},
        ],
    }


async def test_a_blocked_prompt_finishes_with_content_filter(server, received, client):
    result = await GeminiAdapter().chat(client, target_for(server, "gemini-blocked"), chat_body())

    assert result.body["choices"][0]["finish_reason"] == "content_filter"
    assert result.body["choices"][0]["message"]["content"] is None
    assert result.usage == TokenUsage(prompt_tokens=gemini.PROMPT_TOKENS)


async def collect(stream) -> list[dict]:
    return [chunk async for chunk in stream]


async def test_a_streamed_reply_yields_openai_chunks_and_ends_with_the_last_reported_usage(server, received, client):
    stream = await GeminiAdapter().open_chat_stream(client, target_for(server), chat_body(stream=True))
    chunks = await collect(stream)

    assert received.last["path"] == "/v1beta/models/gemini-test:streamGenerateContent"
    assert received.last["query"] == "alt=sse"
    assert "stream" not in received.last["json"]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(chunk["choices"][0]["delta"].get("content", "") for chunk in chunks if chunk["choices"])
    assert text == "".join(gemini.STREAM_PIECES)
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]] == [
        "stop"
    ]
    expected = TokenUsage(
        prompt_tokens=gemini.PROMPT_TOKENS,
        completion_tokens=gemini.STREAM_CANDIDATES_TOKENS + gemini.THOUGHTS_TOKENS,
        cached_tokens=gemini.CACHED_TOKENS,
    )
    assert stream.usage == expected
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 11
    assert chunks[-1]["usage"]["completion_tokens"] == 8
    assert chunks[-1]["usage"]["total_tokens"] == 19


async def test_a_streamed_function_call_arrives_as_one_complete_tool_call_delta(server, received, client):
    target = target_for(server, "gemini-tools")
    stream = await GeminiAdapter().open_chat_stream(client, target, chat_body(tools=[WEATHER_TOOL], stream=True))
    chunks = await collect(stream)

    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"] and "tool_calls" in c["choices"][0]["delta"]]
    [[call]] = [delta["tool_calls"] for delta in deltas]
    assert call["index"] == 0
    assert call["id"].startswith("call_")
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finishes == ["tool_calls"]
    assert stream.usage == FULL_USAGE


async def test_a_streamed_blocked_prompt_finishes_with_content_filter(server, received, client):
    stream = await GeminiAdapter().open_chat_stream(client, target_for(server, "gemini-blocked"), chat_body())
    chunks = await collect(stream)

    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]] == [None, "content_filter"]
    assert stream.usage == TokenUsage(prompt_tokens=gemini.PROMPT_TOKENS)


async def test_an_error_object_inside_the_stream_raises_after_the_pieces_before_it(server, received, client):
    stream = await GeminiAdapter().open_chat_stream(client, target_for(server, "gemini-stream-error"), chat_body())
    seen = []

    with pytest.raises(UpstreamError) as caught:
        async for chunk in stream:
            seen.append(chunk)

    assert "".join(c["choices"][0]["delta"].get("content", "") for c in seen) == "Hello from"
    assert caught.value.message == "An internal error has occurred while streaming."
    assert caught.value.is_retryable is False


async def test_embeddings_are_batched_into_one_request_and_usage_is_left_to_estimate(server, received, client):
    body = {"model": "anything", "input": ["first", "second"], "dimensions": 2}

    result = await GeminiAdapter().embeddings(client, target_for(server, "text-embedding-004"), body)

    assert received.last["path"] == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert received.last["json"] == {
        "requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": text}]}, "outputDimensionality": 2}
            for text in ("first", "second")
        ]
    }
    assert result.body["object"] == "list"
    assert result.body["data"] == [
        {"object": "embedding", "index": 0, "embedding": gemini.EMBEDDING[:2]},
        {"object": "embedding", "index": 1, "embedding": gemini.EMBEDDING[:2]},
    ]
    assert result.usage == TokenUsage(prompt_tokens=0, is_estimated=True)


async def test_embeddings_asked_for_as_base64_are_little_endian_float32(server, received, client):
    body = {"model": "anything", "input": "one", "encoding_format": "base64"}

    result = await GeminiAdapter().embeddings(client, target_for(server, "text-embedding-004"), body)

    raw = base64.b64decode(result.body["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == gemini.EMBEDDING


async def test_token_id_input_to_embeddings_is_refused_before_anything_is_sent(server, received, client):
    with pytest.raises(UpstreamError) as caught:
        await GeminiAdapter().embeddings(client, target_for(server, "text-embedding-004"), {"input": [[1, 2, 3]]})

    assert caught.value.status == 400
    assert caught.value.error_type == "invalid_request_error"
    assert received.requests == []


ERROR_SCENARIOS = [
    ("gemini-fail-500", 500, "server_error", True, "An internal error has occurred"),
    ("gemini-rate-limit", 429, "rate_limit_error", True, "You exceeded your current quota"),
    ("gemini-bad-request", 400, "invalid_request_error", False, "GenerationConfig.temperature: must be between"),
    ("gemini-location", 400, "invalid_request_error", False, "User location is not supported"),
]


@pytest.mark.parametrize("is_stream", [False, True], ids=["chat", "stream"])
@pytest.mark.parametrize(("model", "status", "error_type", "is_retryable", "message"), ERROR_SCENARIOS)
async def test_an_upstream_error_keeps_its_message_status_type_and_retryability(
    server, received, client, is_stream, model, status, error_type, is_retryable, message
):
    adapter = GeminiAdapter()
    call = adapter.open_chat_stream if is_stream else adapter.chat

    with pytest.raises(UpstreamError) as caught:
        await call(client, target_for(server, model), chat_body())

    assert caught.value.status == status
    assert caught.value.error_type == error_type
    assert caught.value.is_retryable is is_retryable
    assert message in caught.value.message


async def test_a_rate_limit_takes_its_retry_delay_from_the_body_when_there_is_no_header(server, received, client):
    with pytest.raises(UpstreamError) as caught:
        await GeminiAdapter().chat(client, target_for(server, "gemini-rate-limit"), chat_body())

    assert caught.value.code == "RESOURCE_EXHAUSTED"
    assert caught.value.retry_after == "7"


async def test_a_wrong_key_is_an_authentication_error_although_google_answers_400(server, received, client):
    with pytest.raises(UpstreamError) as caught:
        await GeminiAdapter().chat(client, target_for(server, api_key="wrong"), chat_body())

    assert caught.value.status == 400
    assert caught.value.error_type == "authentication_error"
    assert caught.value.code == "invalid_api_key"
    assert caught.value.is_retryable is False
    assert caught.value.message == "API key not valid. Please pass a valid API key."


async def test_a_missing_key_is_a_permission_error(server, received, client):
    with pytest.raises(UpstreamError) as caught:
        await GeminiAdapter().embeddings(client, target_for(server, api_key=""), {"input": "x"})

    assert caught.value.status == 403
    assert caught.value.error_type == "permission_error"
    assert "x-goog-api-key" not in received.last["headers"]
