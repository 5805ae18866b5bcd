"""A streamed prompt call is relayed chunk by chunk like a chat stream: the first chunk reaches the client while
the upstream still holds the rest, and a client that hangs up cancels the upstream and leaves one record (499)
naming the prompt and its version. A body over the limit is refused 413 with its record too."""

import httpx
import pytest

from portal import services as portal_services
from tests.factories import DeploymentFactory, ProviderFactory, TeamFactory, make_alias
from tests.gateway import start_gateway, wait_for_usage
from tests.prompts.gateway_prompts import published
from tests.proxy.test_streaming_passthrough import GatedUpstream
from tests.upstreams.server import LoopbackServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def gated(transactional_db):
    upstream = GatedUpstream()
    with LoopbackServer(upstream) as server:
        provider = ProviderFactory(name="gated", base_url=f"{server.url}/v1", timeout_s=30)
        make_alias("gated", DeploymentFactory(name="gated", provider=provider))
        team = TeamFactory()
        published(team=team, alias="gated")
        key = portal_services.issue_api_key(team=team).secret
        with start_gateway() as gateway:
            yield upstream, gateway, key


def open_stream(client: httpx.Client, key: str):
    return client.stream(
        "POST",
        "/v1/prompts/ticker-summary/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"variables": {"ticker": "ACME"}, "stream": True},
    )


def test_a_prompt_stream_arrives_while_the_upstream_is_still_writing(gated):
    upstream, gateway, key = gated
    with httpx.Client(base_url=gateway.url, timeout=10) as client, open_stream(client, key) as response:
        lines = response.iter_lines()
        first = next(line for line in lines if line.startswith("data:"))
        assert "first" in first and not upstream.finished.is_set()
        upstream.gate.set()
        rest = [line for line in lines if line.startswith("data:")]
    assert "second" in rest[0] and rest[-1] == "data: [DONE]"
    [record] = wait_for_usage(1)
    assert (record.status, record.prompt_version, record.completion_tokens) == (200, 1, 2)


def test_a_client_that_hangs_up_cancels_the_upstream_and_leaves_one_record_of_the_prompt(gated):
    upstream, gateway, key = gated
    with httpx.Client(base_url=gateway.url, timeout=10) as client, open_stream(client, key) as response:
        assert response.headers["x-tollway-prompt"] == "ticker-summary@1"
        assert "first" in next(line for line in response.iter_lines() if line.startswith("data:"))

    assert upstream.saw_disconnect.wait(timeout=5)
    [record] = wait_for_usage(1)
    assert (record.status, record.error_type) == (499, "client_disconnected")
    assert (record.prompt, record.prompt_version, record.stream) == ("ticker-summary", 1, True)


def test_a_body_over_the_limit_is_refused_413_and_recorded(gated, settings):
    _upstream, gateway, key = gated
    settings.TOLLWAY_MAX_BODY_BYTES = 1000

    answer = httpx.post(
        f"{gateway.url}/v1/prompts/ticker-summary/completions",
        json={"variables": {"ticker": "A" * 2000}},
        headers={"authorization": f"Bearer {key}"},
    )

    assert answer.status_code == 413 and answer.json()["error"]["code"] == "request_too_large"
    [record] = wait_for_usage(1)
    assert (record.status, record.endpoint) == (413, "prompts.completions")
