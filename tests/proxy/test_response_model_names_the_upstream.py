"""The response's `model` names the upstream model that answered (the deployment's model id), on every
endpoint, streamed or not: never the alias the client asked for, nor a name the upstream reports for itself."""

import time

import anthropic
import openai
import orjson
import pytest

from portal import services
from tests.factories import DeploymentFactory, ProviderFactory, make_alias
from tests.gateway import start_gateway
from tests.upstreams.server import LoopbackServer, read_body, send_json, send_sse

pytestmark = pytest.mark.django_db(transaction=True)

DEPLOYED = "deployed-model-id"
SELF_REPORTED = "upstream-snapshot-2099-01-01"
HI = [{"role": "user", "content": "Hi"}]
USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


async def self_naming_upstream(scope, receive, send):
    """An OpenAI-style upstream that names itself SELF_REPORTED whatever it was asked for."""
    if scope["type"] != "http":
        return
    payload = orjson.loads(await read_body(receive))
    if scope["path"].endswith("/embeddings"):
        data = [{"object": "embedding", "index": 0, "embedding": [0.1]}]
        return await send_json(send, 200, {"object": "list", "data": data, "model": SELF_REPORTED, "usage": USAGE})
    base = {"id": "chatcmpl-1", "created": int(time.time()), "model": SELF_REPORTED}
    if not payload.get("stream"):
        message = {"role": "assistant", "content": "Hello"}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return await send_json(send, 200, {**base, "object": "chat.completion", "choices": [choice], "usage": USAGE})
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello"}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": USAGE},
    ]
    events = [b"data: " + orjson.dumps({**base, "object": "chat.completion.chunk", **c}) + b"\n\n" for c in chunks]
    await send_sse(send, [*events, b"data: [DONE]\n\n"])


@pytest.fixture
def gateway_and_key(transactional_db, team):
    with LoopbackServer(self_naming_upstream) as upstream:
        provider = ProviderFactory(name="self-naming", base_url=f"{upstream.url}/v1")
        make_alias(
            "named", DeploymentFactory(name="named-deployment", provider=provider, model=DEPLOYED, capabilities=[])
        )
        key = services.issue_api_key(team=team).secret
        with start_gateway() as gateway:
            yield gateway, key


def test_a_chat_completion_names_the_deployed_model(gateway_and_key):
    gateway, key = gateway_and_key
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)

    assert client.chat.completions.create(model="named", messages=HI).model == DEPLOYED


def test_every_chunk_of_a_streamed_chat_completion_names_the_deployed_model(gateway_and_key):
    gateway, key = gateway_and_key
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
    chunks = list(client.chat.completions.create(model="named", messages=HI, stream=True))

    assert chunks and {chunk.model for chunk in chunks} == {DEPLOYED}


def test_embeddings_name_the_deployed_model(gateway_and_key):
    gateway, key = gateway_and_key
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)

    assert client.embeddings.create(model="named", input="Hi").model == DEPLOYED


def test_a_message_names_the_deployed_model(gateway_and_key):
    gateway, key = gateway_and_key
    client = anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)

    assert client.messages.create(model="named", max_tokens=16, messages=HI).model == DEPLOYED


def test_a_streamed_message_names_the_deployed_model(gateway_and_key):
    gateway, key = gateway_and_key
    client = anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)
    with client.messages.stream(model="named", max_tokens=16, messages=HI) as stream:
        message = stream.get_final_message()

    assert message.model == DEPLOYED
