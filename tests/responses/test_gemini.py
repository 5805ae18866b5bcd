"""/v1/responses translated to Gemini (routing/providers/gemini.py), through the openai SDK: a function tool goes
out as a function declaration and its call comes back as a function_call item; the call's output goes back as
a functionResponse (with the call's thought signature, which Gemini demands), streamed and not, and the usage
records are Gemini's exact counts."""

import json

import openai
import pytest

from portal import services
from routing.credentials import encrypt_secret
from tests.factories import DeploymentFactory, ProviderFactory, TeamFactory, make_alias
from tests.gateway import start_gateway, wait_for_usage
from tests.responses.conftest import WEATHER_TOOL
from tests.upstreams import gemini_server as gemini
from tests.upstreams.server import LoopbackServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def gemini_gateway():
    upstream = gemini.GeminiUpstream()
    with LoopbackServer(upstream) as server:
        provider = ProviderFactory(
            name="gemini-test",
            kind="gemini",
            base_url=f"{server.url}/v1beta",
            api_key_encrypted=encrypt_secret(gemini.API_KEY),
        )
        make_alias("tools", DeploymentFactory(name="gemini-tools", provider=provider, model="test-tools"))
        key = services.issue_api_key(team=TeamFactory()).secret
        with start_gateway() as gateway:
            yield openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0), upstream


def function_response_of(upstream) -> dict:
    [part] = [p for p in upstream.log.last["json"]["contents"][-1]["parts"] if "functionResponse" in p]
    return part


def test_a_function_tool_loop_with_previous_response_id_runs_on_gemini(gemini_gateway):
    sdk, upstream = gemini_gateway

    first = sdk.responses.create(model="tools", input="Weather in Paris?", tools=[WEATHER_TOOL])
    [call] = [item for item in first.output if item.type == "function_call"]
    declared = upstream.log.last["json"]["tools"][0]["functionDeclarations"]
    second = sdk.responses.create(
        model="tools",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 24 C"}],
        tools=[WEATHER_TOOL],
    )

    assert [d["name"] for d in declared] == ["get_weather"]
    assert (call.name, json.loads(call.arguments)) == ("get_weather", gemini.TOOL_ARGS)
    assert second.output_text == gemini.TOOL_RESULT_REPLY
    sent = function_response_of(upstream)
    assert sent["functionResponse"]["name"] == "get_weather" and "Sunny, 24 C" in json.dumps(sent)
    replayed = [p for p in upstream.log.last["json"]["contents"][-2]["parts"] if "functionCall" in p]
    assert replayed[0]["thoughtSignature"] == gemini.THOUGHT_SIGNATURE
    assert (second.usage.input_tokens, second.usage.output_tokens) == (
        gemini.PROMPT_TOKENS,
        gemini.CANDIDATES_TOKENS + gemini.THOUGHTS_TOKENS,
    )
    records = wait_for_usage(2)
    assert [(r.endpoint, r.provider, r.status, r.estimated) for r in records] == [
        ("responses", "gemini-test", 200, False)
    ] * 2
    assert [(r.prompt_tokens, r.completion_tokens) for r in records] == [
        (gemini.PROMPT_TOKENS, gemini.CANDIDATES_TOKENS + gemini.THOUGHTS_TOKENS)
    ] * 2


def test_a_streamed_function_tool_loop_runs_on_gemini_with_the_whole_conversation_as_input(gemini_gateway):
    sdk, upstream = gemini_gateway
    question = {"role": "user", "content": "Weather in Paris?"}

    with sdk.responses.stream(model="tools", input=[question], tools=[WEATHER_TOOL], store=False) as stream:
        kinds = [event.type for event in stream]
        first = stream.get_final_response()
    [call] = [item for item in first.output if item.type == "function_call"]
    result = {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 24 C"}
    called = {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments}
    conversation = [question, called, result]
    with sdk.responses.stream(model="tools", input=conversation, tools=[WEATHER_TOOL], store=False) as stream:
        second = stream.get_final_response()

    assert "response.function_call_arguments.delta" in kinds and kinds[-1] == "response.completed"
    assert json.loads(call.arguments) == gemini.TOOL_ARGS
    assert second.output_text == "".join(gemini.STREAM_PIECES)
    assert function_response_of(upstream)["functionResponse"]["name"] == "get_weather"
    records = wait_for_usage(2)
    assert [(r.endpoint, r.stream, r.status, r.estimated) for r in records] == [("responses", True, 200, False)] * 2
    assert (records[1].prompt_tokens, records[1].completion_tokens) == (
        gemini.PROMPT_TOKENS,
        gemini.STREAM_CANDIDATES_TOKENS + gemini.THOUGHTS_TOKENS,
    )
    assert (second.usage.input_tokens, second.usage.output_tokens) == (
        records[1].prompt_tokens,
        records[1].completion_tokens,
    )
