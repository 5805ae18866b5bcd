"""Agent frameworks that speak the Responses API by default, through the gateway: the OpenAI Agents SDK (its
default OpenAIResponsesModel, an agent with a function tool, streamed and not) and LangChain's ChatOpenAI with
use_responses_api=True (text, tool calls, streaming), on both kinds of upstream (tests/responses/conftest.py)."""

import asyncio
import json

import openai
import pytest
from agents import Agent, ModelSettings, RunConfig, Runner, function_tool
from agents.models.openai_responses import OpenAIResponsesModel
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_openai import ChatOpenAI

from tests.gateway import wait_for_usage
from tests.responses.conftest import STREAMED

pytestmark = pytest.mark.django_db(transaction=True)

weather_calls: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    weather_calls.append(city)
    return f"Sunny in {city}"


def agent_for(gateway) -> Agent:
    client = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.key, max_retries=0)
    # What the SDK uses by default (OpenAIProvider's Responses model), given our client instead of a global one.
    model = OpenAIResponsesModel(model="tools", openai_client=client)
    return Agent(
        name="Weather",
        instructions="Answer weather questions.",
        tools=[get_weather],
        model=model,
        model_settings=ModelSettings(temperature=0.2),
    )


def run_config() -> RunConfig:
    return RunConfig(tracing_disabled=True)  # traces would go to OpenAI's servers


def test_agents_sdk_runs_a_function_tool_loop(gateway):
    weather_calls.clear()
    result = asyncio.run(Runner.run(agent_for(gateway), "Weather in Paris?", run_config=run_config()))

    assert weather_calls == ["Paris"]
    assert result.final_output == gateway.reply
    first, second = wait_for_usage(2)
    assert {first.endpoint, second.endpoint} == {"responses"}
    assert not first.estimated and not second.estimated
    # The second call carried the tool's result back (the SDK sends the whole conversation, store or not).
    sent = gateway.upstreams[gateway.kind].log.last["json"]
    assert "Sunny in Paris" in json.dumps(sent)


def test_agents_sdk_streams_a_function_tool_loop(gateway):
    weather_calls.clear()

    async def run():
        streamed = Runner.run_streamed(agent_for(gateway), "Weather in Paris?", run_config=run_config())
        kinds = []
        async for event in streamed.stream_events():
            if event.type == "raw_response_event":
                kinds.append(event.data.type)
        return streamed, kinds

    streamed, kinds = asyncio.run(run())

    assert weather_calls == ["Paris"]
    assert streamed.final_output.replace(" ", "") == STREAMED.replace(" ", "")
    assert kinds.count("response.completed") == 2 and "response.function_call_arguments.delta" in kinds
    records = wait_for_usage(2)
    assert all(r.stream and r.endpoint == "responses" and r.status == 200 for r in records)


def chat_model(gateway, model: str, **kwargs) -> ChatOpenAI:
    return ChatOpenAI(
        model=model,
        base_url=f"{gateway.url}/v1",
        api_key=gateway.key,
        use_responses_api=True,
        max_retries=0,
        **kwargs,
    )


def test_langchain_chat_openai_over_responses(gateway):
    reply = chat_model(gateway, "chat").invoke("Hi")

    assert reply.text == gateway.reply
    assert reply.usage_metadata["input_tokens"] > 0 and reply.usage_metadata["output_tokens"] > 0
    [record] = wait_for_usage(1)
    assert record.endpoint == "responses"
    assert (record.prompt_tokens, record.completion_tokens) == (
        reply.usage_metadata["input_tokens"],
        reply.usage_metadata["output_tokens"],
    )


def test_langchain_tool_calls_and_results_over_responses(gateway):
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"Sunny in {city}"

    model = chat_model(gateway, "tools").bind_tools([get_weather])
    question = HumanMessage("Weather in Paris?")
    call_message = model.invoke([question])
    [call] = call_message.tool_calls
    assert call["name"] == "get_weather" and call["args"] == {"city": "Paris"}

    answer = model.invoke([question, call_message, ToolMessage("Sunny in Paris", tool_call_id=call["id"])])

    assert answer.text == gateway.reply and not answer.tool_calls
    assert "Sunny in Paris" in json.dumps(gateway.upstreams[gateway.kind].log.last["json"])


def test_langchain_streams_over_responses(gateway):
    chunks = list(chat_model(gateway, "chat").stream("Hi"))

    text = "".join(chunk.text for chunk in chunks)
    assert text.replace(" ", "") == STREAMED.replace(" ", "")
    [record] = wait_for_usage(1)
    assert record.stream and record.endpoint == "responses" and record.status == 200
