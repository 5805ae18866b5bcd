"""A gateway in front of both kinds of test upstream for /v1/responses: an OpenAI-compatible one that speaks only
chat completions, and an Anthropic one. Aliases (`<alias>` on the kind under test, `<alias>-openai` and
`<alias>-anthropic` on each):
  chat   a fixed text reply        tools  calls the first function tool, answers in text after its result
  short  cut at max tokens         json   (OpenAI upstream only) a JSON document of the requested schema
"""

from dataclasses import dataclass

import openai
import pytest

from portal import services
from routing.credentials import encrypt_secret
from tests.factories import DeploymentFactory, ProviderFactory, TeamFactory, make_alias
from tests.gateway import start_gateway
from tests.upstreams import anthropic_server, openai_server
from tests.upstreams.agent_upstreams import AgentAnthropicUpstream, AgentOpenAIUpstream
from tests.upstreams.server import LoopbackServer

KINDS = ("openai-compatible", "anthropic")
REPLIES = {"openai-compatible": openai_server.REPLY, "anthropic": anthropic_server.REPLY}
STREAMED = "Hello from the stream."
MODELS = {"chat": "test-model", "tools": "test-tools", "short": "test-max-tokens", "json": "test-json"}
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@dataclass
class Gateway:
    kind: str
    url: str
    key: str
    other_key: str  # another team's
    upstreams: dict
    reply: str

    def client(self, key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key or self.key, max_retries=0)


def build_catalogue(upstream_urls: dict[str, str]) -> None:
    providers = {
        "openai-compatible": ProviderFactory(
            name="openai-compatible-test",
            kind="openai-compatible",
            base_url=upstream_urls["openai-compatible"] + "/v1",
            api_key_encrypted=encrypt_secret("sk-upstream-test"),
        ),
        "anthropic": ProviderFactory(
            name="anthropic-test",
            kind="anthropic",
            base_url=upstream_urls["anthropic"] + "/v1",
            api_key_encrypted=encrypt_secret("sk-ant-upstream-test"),
        ),
    }
    for kind, provider in providers.items():
        suffix = "openai" if kind == "openai-compatible" else "anthropic"
        for alias, model in MODELS.items():
            deployment = DeploymentFactory(name=f"{alias}-{suffix}", provider=provider, model=model)
            make_alias(f"{alias}-{suffix}", deployment)


@pytest.fixture
def upstreams():
    servers = {"openai-compatible": AgentOpenAIUpstream(), "anthropic": AgentAnthropicUpstream()}
    with LoopbackServer(servers["openai-compatible"]) as openai_loop, LoopbackServer(servers["anthropic"]) as ant_loop:
        yield servers, {"openai-compatible": openai_loop.url, "anthropic": ant_loop.url}


@pytest.fixture
def both_kinds(transactional_db, upstreams):
    """The catalogue with both kinds' aliases, and two teams' keys."""
    servers, urls = upstreams
    build_catalogue(urls)
    key = services.issue_api_key(team=TeamFactory()).secret
    other_key = services.issue_api_key(team=TeamFactory()).secret
    return servers, key, other_key


@pytest.fixture(params=KINDS)
def gateway(request, both_kinds):
    """One gateway; the bare aliases (chat, tools, short, json) route to the kind under test."""
    kind = request.param
    servers, key, other_key = both_kinds
    suffix = "openai" if kind == "openai-compatible" else "anthropic"
    from routing.models import Deployment

    for alias in MODELS:
        make_alias(alias, Deployment.objects.get(name=f"{alias}-{suffix}"))
    with start_gateway() as server:
        yield Gateway(kind, server.url, key, other_key, servers, REPLIES[kind])
