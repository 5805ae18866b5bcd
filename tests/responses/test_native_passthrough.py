"""Deployments flagged speaks_responses get /v1/responses passed through (tests/upstreams/responses_server.py
speaks nothing else), under the gateway's own ids and stored like translated answers, so one conversation can
move between native, chat-only and Anthropic deployments."""

import asyncio
import json
import threading

import httpx
import openai
import orjson
import pytest
from agents import Agent, RunConfig, Runner
from agents.models.openai_responses import OpenAIResponsesModel
from langchain_openai import ChatOpenAI

from routing.credentials import encrypt_secret
from tests.factories import DeploymentFactory, ProviderFactory, make_alias
from tests.gateway import start_gateway, wait_for_usage
from tests.responses.conftest import REPLIES, WEATHER_TOOL
from tests.responses.test_agent_frameworks import get_weather, weather_calls
from tests.upstreams import responses_server
from tests.upstreams.responses_server import ResponsesUpstream
from tests.upstreams.server import LoopbackServer, read_body

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def native(both_kinds):
    servers, key, other_key = both_kinds
    upstream = ResponsesUpstream()
    with LoopbackServer(upstream) as server:
        provider = ProviderFactory(
            name="responses-native",
            kind="openai-compatible",
            base_url=f"{server.url}/v1",
            api_key_encrypted=encrypt_secret("sk-upstream-test"),
        )
        make_alias(
            "native", DeploymentFactory(name="native", provider=provider, model="up-model", speaks_responses=True)
        )
        with start_gateway() as gateway:
            sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
            yield sdk, upstream, servers, gateway, key


def test_create_passes_through_under_the_gateways_id_with_exact_usage(native):
    sdk, upstream, _, _, _ = native
    response = sdk.responses.create(model="native", instructions="Be brief.", input="Hi", metadata={"t": "1"})

    assert response.output_text == responses_server.REPLY
    assert response.id.startswith("resp_") and response.id != responses_server.UPSTREAM_ID
    assert response.model == "up-model" and response.store is True and response.metadata == {"t": "1"}
    sent = upstream.log.last
    assert sent["path"] == "/v1/responses" and sent["json"]["model"] == "up-model"
    assert sent["json"]["store"] is False and sent["json"]["instructions"] == "Be brief."
    assert [item["role"] for item in sent["json"]["input"]] == ["user"]
    [record] = wait_for_usage(1)
    assert (record.endpoint, record.status, record.estimated) == ("responses", 200, False)
    assert (record.prompt_tokens, record.completion_tokens) == (
        responses_server.INPUT_TOKENS,
        responses_server.OUTPUT_TOKENS,
    )
    assert record.cached_tokens == responses_server.CACHED_TOKENS
    assert sdk.responses.retrieve(response.id).output_text == responses_server.REPLY


def test_stream_is_relayed_renumbered_and_stored(native):
    sdk, upstream, _, _, _ = native
    with sdk.responses.stream(model="native", input="Hi") as stream:
        events = list(stream)
        final = stream.get_final_response()

    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert {e.response.id for e in events if hasattr(e, "response")} == {final.id}
    assert final.output_text == "".join(responses_server.STREAM_PIECES)
    assert upstream.log.last["json"]["stream"] is True
    [record] = wait_for_usage(1)
    assert record.stream and not record.estimated and record.completion_tokens == responses_server.OUTPUT_TOKENS
    assert sdk.responses.retrieve(final.id).output_text == final.output_text


def test_tool_loop_sends_the_whole_conversation_upstream(native):
    sdk, upstream, _, _, _ = native
    first = sdk.responses.create(model="native", input="Weather in Paris?", tools=[WEATHER_TOOL])
    [call] = first.output
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Paris"}

    second = sdk.responses.create(
        model="native",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"}],
        tools=[WEATHER_TOOL],
    )

    assert second.output_text == responses_server.REPLY
    sent = upstream.log.last["json"]
    assert "previous_response_id" not in sent  # the upstream keeps nothing: the gateway holds the conversation
    assert [item["type"] for item in sent["input"]] == ["message", "function_call", "function_call_output"]


def test_a_conversation_moves_between_native_translated_and_anthropic_deployments(native):
    sdk, upstream, servers, _, _ = native
    first = sdk.responses.create(model="chat-openai", input="My name is Ada.")
    second = sdk.responses.create(model="native", previous_response_id=first.id, input="My name?")
    third = sdk.responses.create(model="chat-anthropic", previous_response_id=second.id, input="Again?")

    assert second.output_text == responses_server.REPLY and third.output_text == REPLIES["anthropic"]
    native_input = upstream.log.last["json"]["input"]
    assert [item.get("role") for item in native_input] == ["user", "assistant", "user"]
    assert REPLIES["openai-compatible"] in json.dumps(native_input)
    anthropic_messages = servers["anthropic"].log.last["json"]["messages"]
    assert [m["role"] for m in anthropic_messages] == ["user", "assistant", "user", "assistant", "user"]
    assert responses_server.REPLY in json.dumps(anthropic_messages)


def test_agents_sdk_and_langchain_on_a_native_deployment(native):
    _, _, _, gateway, key = native
    weather_calls.clear()
    client = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
    agent = Agent(name="W", tools=[get_weather], model=OpenAIResponsesModel(model="native", openai_client=client))

    async def run():
        streamed = Runner.run_streamed(agent, "Weather in Paris?", run_config=RunConfig(tracing_disabled=True))
        async for _ in streamed.stream_events():
            pass
        return streamed

    streamed = asyncio.run(run())
    assert weather_calls == ["Paris"] and streamed.final_output == "".join(responses_server.STREAM_PIECES)

    chat = ChatOpenAI(model="native", base_url=f"{gateway.url}/v1", api_key=key, use_responses_api=True, max_retries=0)
    assert chat.invoke("Hi").text == responses_server.REPLY
    records = wait_for_usage(3)
    assert all(r.endpoint == "responses" and r.status == 200 and not r.estimated for r in records)


class GatedResponsesUpstream:
    """Sends response.created and one text delta, then holds until its client goes away."""

    def __init__(self) -> None:
        self.saw_disconnect = threading.Event()

    async def __call__(self, scope, receive, send):
        await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for data in (
            {"type": "response.created", "sequence_number": 0, "response": {"id": "resp_up", "status": "in_progress"}},
            {
                "type": "response.output_text.delta",
                "sequence_number": 1,
                "item_id": "m",
                "output_index": 0,
                "content_index": 0,
                "delta": "first words",
                "logprobs": [],
            },
        ):
            body = b"event: " + data["type"].encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
            await send({"type": "http.response.body", "body": body, "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass
        self.saw_disconnect.set()


def test_a_client_leaving_a_native_stream_cancels_the_upstream_and_is_recorded_once(both_kinds):
    _, key, _ = both_kinds
    upstream = GatedResponsesUpstream()
    with LoopbackServer(upstream) as server:
        provider = ProviderFactory(name="gated-native", kind="openai-compatible", base_url=f"{server.url}/v1")
        make_alias("gated", DeploymentFactory(name="gated", provider=provider, speaks_responses=True))
        with start_gateway() as gateway, httpx.Client(base_url=gateway.url, timeout=10) as client:
            body = {"model": "gated", "input": "Hi", "stream": True}
            headers = {"authorization": f"Bearer {key}"}
            with client.stream("POST", "/v1/responses", json=body, headers=headers) as response:
                first = next(line for line in response.iter_lines() if line.startswith("data:") and "delta" in line)
                assert "first words" in first
            assert upstream.saw_disconnect.wait(timeout=5)

    [record] = wait_for_usage(1)
    assert (record.endpoint, record.status, record.error_type) == ("responses", 499, "client_disconnected")
    assert record.estimated and record.completion_tokens >= 1  # counted from the deltas relayed
