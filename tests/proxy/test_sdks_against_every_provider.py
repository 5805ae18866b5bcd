"""The official openai and anthropic SDKs, through the gateway, against each provider kind's test server."""

import asyncio
import json

import anthropic
import openai
import pytest

from portal import services
from routing.credentials import encrypt_secret
from tests.factories import DeploymentFactory, ProviderFactory, TeamFactory, make_alias
from tests.gateway import start_gateway, wait_for_usage
from tests.upstreams import anthropic_server, gemini_server, openai_server
from tests.upstreams.server import LoopbackServer

pytestmark = pytest.mark.django_db(transaction=True)

# kind -> (test server factory, base URL suffix, upstream key, the server's fixed reply)
KINDS = {
    "openai": (lambda: openai_server.OpenAIUpstream(), "/v1", "sk-upstream-test", openai_server.REPLY),
    "openai-compatible": (lambda: openai_server.OpenAIUpstream(), "/v1", "sk-upstream-test", openai_server.REPLY),
    "azure-openai": (lambda: openai_server.OpenAIUpstream(azure=True), "", "sk-upstream-test", openai_server.REPLY),
    "anthropic": (lambda: anthropic_server.AnthropicUpstream(), "/v1", "sk-ant-upstream-test", anthropic_server.REPLY),
    "gemini": (lambda: gemini_server.GeminiUpstream(), "/v1beta", gemini_server.API_KEY, gemini_server.REPLY),
}
STREAMED = "Hello from the stream."
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture(params=list(KINDS))
def provider_gateway(request, transactional_db):
    kind = request.param
    make_server, suffix, upstream_key, reply = KINDS[kind]
    upstream = make_server()
    with LoopbackServer(upstream) as server:
        provider = ProviderFactory(
            name=f"{kind}-test",
            kind=kind,
            base_url=server.url + suffix,
            api_key_encrypted=encrypt_secret(upstream_key),
            api_version="2024-10-21" if kind == "azure-openai" else "",
        )
        make_alias("chat", DeploymentFactory(name="chat", provider=provider, model="test-model"))
        make_alias("tools", DeploymentFactory(name="tools", provider=provider, model="test-tools"))
        make_alias(
            "embed", DeploymentFactory(name="embed", provider=provider, model="test-embed", capabilities=["embeddings"])
        )
        key = services.issue_api_key(team=TeamFactory()).secret
        with start_gateway() as gateway:
            yield kind, gateway, key, reply, upstream


def openai_client(gateway, key):
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)


def test_openai_sdk_sync_chat(provider_gateway):
    kind, gateway, key, reply, _ = provider_gateway
    completion = openai_client(gateway, key).chat.completions.create(
        model="chat", messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    )
    assert completion.choices[0].message.content == reply
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    [record] = wait_for_usage(1)
    assert record.provider == f"{kind}-test" and record.status == 200 and not record.estimated
    assert record.prompt_tokens == completion.usage.prompt_tokens
    assert record.completion_tokens == completion.usage.completion_tokens


def test_openai_sdk_async_chat(provider_gateway):
    _, gateway, key, reply, _ = provider_gateway

    async def call():
        client = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
        async with client:
            return await asyncio.gather(
                *(
                    client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "Hi"}])
                    for _ in range(3)
                )
            )

    completions = asyncio.run(call())
    assert [c.choices[0].message.content for c in completions] == [reply] * 3
    assert len(wait_for_usage(3)) == 3


def test_openai_sdk_streaming_with_usage(provider_gateway):
    _, gateway, key, _, _ = provider_gateway
    chunks = list(
        openai_client(gateway, key).chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "Hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.replace(" ", "") == STREAMED.replace(" ", "")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    [record] = wait_for_usage(1)
    assert record.stream and record.completion_tokens == chunks[-1].usage.completion_tokens


def test_openai_sdk_tool_calls(provider_gateway):
    _, gateway, key, _, _ = provider_gateway
    completion = openai_client(gateway, key).chat.completions.create(
        model="tools",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],
    )
    [call] = completion.choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert completion.choices[0].finish_reason == "tool_calls"


def test_openai_sdk_streamed_tool_calls(provider_gateway):
    _, gateway, key, _, _ = provider_gateway
    stream = openai_client(gateway, key).chat.completions.create(
        model="tools",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],
        stream=True,
    )
    names, arguments = [], ""
    for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                if call.function.name:
                    names.append(call.function.name)
                arguments += call.function.arguments or ""
    assert names == ["get_weather"] and json.loads(arguments) == {"city": "Paris"}


def test_openai_sdk_embeddings_and_models(provider_gateway):
    kind, gateway, key, _, _ = provider_gateway
    client = openai_client(gateway, key)
    assert {m.id for m in client.models.list()} == {"chat", "tools", "embed"}
    if kind == "anthropic":
        with pytest.raises(openai.BadRequestError, match="embeddings"):
            client.embeddings.create(model="embed", input=["a", "b"])
        return
    result = client.embeddings.create(model="embed", input=["a", "b"])
    assert len(result.data) == 2 and all(len(item.embedding) == 3 for item in result.data)


def test_anthropic_sdk_messages(provider_gateway):
    kind, gateway, key, reply, _ = provider_gateway
    client = anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)
    message = client.messages.create(
        model="chat", max_tokens=200, system="Be brief.", messages=[{"role": "user", "content": "Hi"}]
    )
    assert message.content[0].text == reply
    # The response names the upstream model that answered (the deployment's model id), not the alias.
    assert message.stop_reason == "end_turn" and message.model == "test-model"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    [record] = wait_for_usage(1)
    assert record.endpoint == "messages" and record.provider == f"{kind}-test"


def test_anthropic_sdk_streaming(provider_gateway):
    _, gateway, key, _, _ = provider_gateway
    client = anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)
    with client.messages.stream(model="chat", max_tokens=200, messages=[{"role": "user", "content": "Hi"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text.replace(" ", "") == STREAMED.replace(" ", "")
    assert final.usage.output_tokens > 0
    [record] = wait_for_usage(1)
    assert record.stream and record.completion_tokens == final.usage.output_tokens


def test_anthropic_sdk_tool_use(provider_gateway):
    _, gateway, key, _, _ = provider_gateway
    client = anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)
    tool = {
        "name": "get_weather",
        "description": "Weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
    message = client.messages.create(
        model="tools", max_tokens=200, tools=[tool], messages=[{"role": "user", "content": "Weather in Paris?"}]
    )
    [tool_use] = [block for block in message.content if block.type == "tool_use"]
    assert tool_use.name == "get_weather" and tool_use.input == {"city": "Paris"}
    assert message.stop_reason == "tool_use"


def test_anthropic_sdk_errors_are_anthropic_shaped(provider_gateway):
    _, gateway, key, _, _ = provider_gateway
    client = anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.create(model="nope", max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.body["type"] == "error" and caught.value.body["error"]["type"] == "not_found_error"
    bad = anthropic.Anthropic(base_url=gateway.url, api_key="sk-tw-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="chat", max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
