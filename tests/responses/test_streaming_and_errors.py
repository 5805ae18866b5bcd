"""/v1/responses streams chunk by chunk and a client that hangs up cancels the upstream; errors come in the
Responses API's shape (OpenAI's error object) with the right status, and every call leaves one usage record."""

import httpx
import openai
import pytest

from portal import services
from routing.models import StoredResponse
from tests.factories import DeploymentFactory, ProviderFactory, TeamFactory, make_alias
from tests.gateway import start_gateway, wait_for_usage
from tests.proxy.test_streaming_passthrough import GatedUpstream
from tests.upstreams import openai_server
from tests.upstreams.server import LoopbackServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def gated():
    upstream = GatedUpstream()
    with LoopbackServer(upstream) as server:
        provider = ProviderFactory(name="gated", base_url=f"{server.url}/v1", timeout_s=30)
        make_alias("gated", DeploymentFactory(name="gated", provider=provider))
        key = services.issue_api_key(team=TeamFactory()).secret
        with start_gateway() as gateway:
            yield upstream, gateway, key


def open_stream(client: httpx.Client, key: str):
    return client.stream(
        "POST",
        "/v1/responses",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "gated", "input": "Hi", "stream": True},
    )


def test_the_first_delta_reaches_the_client_while_the_upstream_is_still_writing(gated):
    upstream, gateway, key = gated
    with httpx.Client(base_url=gateway.url, timeout=10) as client, open_stream(client, key) as response:
        lines = response.iter_lines()
        first_delta = next(line for line in lines if line.startswith("data:") and "output_text.delta" in line)
        assert '"delta":"first"' in first_delta and not upstream.finished.is_set()
        upstream.gate.set()
        rest = [line for line in lines if line.startswith("event:")]
    assert rest[-1] == "event: response.completed"
    [record] = wait_for_usage(1)
    assert (record.endpoint, record.status, record.prompt_tokens, record.completion_tokens) == ("responses", 200, 3, 2)


def test_a_client_that_hangs_up_cancels_the_upstream_and_is_recorded_once(gated):
    upstream, gateway, key = gated
    with httpx.Client(base_url=gateway.url, timeout=10) as client, open_stream(client, key) as response:
        next(line for line in response.iter_lines() if "output_text.delta" in line)

    assert upstream.saw_disconnect.wait(timeout=5)
    [record] = wait_for_usage(1)
    assert (record.endpoint, record.status, record.error_type) == ("responses", 499, "client_disconnected")
    assert record.stream and record.estimated and record.completion_tokens >= 1
    assert not StoredResponse.objects.exists()  # an answer never finished is not kept


def error_of(gateway, key, body: dict) -> tuple[int, dict]:
    reply = httpx.post(f"{gateway.url}/v1/responses", headers={"authorization": f"Bearer {key}"}, json=body)
    return reply.status_code, reply.json()


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"model": "gated", "input": "Hi", "tools": [{"type": "web_search"}]}, "tools[0]", "unsupported_tool"),
        ({"model": "gated", "input": "Hi", "tools": [{"type": "file_search"}]}, "tools[0]", "unsupported_tool"),
        ({"model": "gated"}, "input", None),
        ({"model": "gated", "input": [{"type": "computer_call"}]}, "input[0].type", None),
        (
            {"model": "gated", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0]",
            None,
        ),
        ({"model": "gated", "input": "Hi", "max_output_tokens": 0}, "max_output_tokens", None),
        ({"model": "gated", "input": "Hi", "temperature": 3}, "temperature", None),
        ({"model": "gated", "input": "Hi", "store": "yes"}, "store", None),
        ({"model": "gated", "input": "Hi", "metadata": {"k": 1}}, "metadata", None),
        (
            {
                "model": "gated",
                "input": "Hi",
                "tool_choice": {"type": "file_search"},
                "tools": [{"type": "function", "name": "f"}],
            },
            "tool_choice",
            None,
        ),
        ({"model": "gated", "input": "Hi", "text": {"format": {"type": "json_schema"}}}, "text", None),
        ({"model": "gated", "input": "Hi", "background": True}, "background", None),
    ],
)
def test_a_request_the_gateway_cannot_serve_is_a_400_naming_its_param(gated, body, param, code):
    _, gateway, key = gated
    status, reply = error_of(gateway, key, body)

    assert status == 400
    assert reply["error"]["type"] == "invalid_request_error" and reply["error"]["param"] == param
    assert reply["error"]["code"] == code and reply["error"]["message"]
    [record] = wait_for_usage(1)
    assert (record.endpoint, record.status, record.cost_usd) == ("responses", 400, 0)


def test_the_sdk_raises_its_own_errors(gated):
    _, gateway, key = gated
    sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)

    with pytest.raises(openai.BadRequestError) as built_in:
        sdk.responses.create(model="gated", input="Hi", tools=[{"type": "web_search"}])
    assert "web_search" in built_in.value.message
    with pytest.raises(openai.NotFoundError) as unknown_model:
        sdk.responses.create(model="no-such-model", input="Hi")
    assert unknown_model.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError) as unknown_previous:
        sdk.responses.create(model="gated", input="Hi", previous_response_id="resp_" + "0" * 32)
    assert unknown_previous.value.body["param"] == "previous_response_id"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-tw-nope", max_retries=0).responses.retrieve("resp_1")
    unknown_route = httpx.get(f"{gateway.url}/v1/responses/resp_1/cancel", headers={"authorization": f"Bearer {key}"})
    assert unknown_route.status_code == 404 and unknown_route.json()["error"]["code"] == "unknown_url"


def test_fail_over_and_upstream_errors_keep_their_statuses_and_records(catalogue, api_key):
    with start_gateway() as gateway:
        sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=api_key, max_retries=0)
        answered = sdk.responses.create(model="failover", input="Hi")
        with sdk.responses.stream(model="failover", input="Hi") as stream:
            streamed = stream.get_final_response()
        with pytest.raises(openai.APIStatusError) as failed:
            sdk.responses.create(model="always-500", input="Hi")
        with pytest.raises(openai.BadRequestError) as rejected:
            sdk.responses.create(model="bad-request", input="Hi")
        with pytest.raises(openai.RateLimitError):
            sdk.responses.create(model="rate-limited", input="Hi")

    assert answered.output_text == openai_server.REPLY and streamed.status == "completed"
    assert failed.value.status_code == 502 and failed.value.code == "all_deployments_failed"
    assert rejected.value.body["param"] == "temperature"
    records = wait_for_usage(5)
    assert [(r.status, r.attempts, r.deployment, r.stream) for r in records] == [
        (200, 2, "main-gpt-4o-mini", False),
        (200, 2, "main-gpt-4o-mini", True),
        (502, 1, "broken-500", False),
        (400, 1, "bad-request", False),
        (429, 1, "rate-limit", False),
    ]
    assert all(r.endpoint == "responses" for r in records)
    assert (records[0].prompt_tokens, records[0].completion_tokens) == (
        answered.usage.input_tokens,
        answered.usage.output_tokens,
    )
    # The streamed fail-over too: one record, of the deployment that answered, with the tokens the client saw.
    assert (records[1].prompt_tokens, records[1].completion_tokens, records[1].estimated) == (
        streamed.usage.input_tokens,
        streamed.usage.output_tokens,
        False,
    )
    assert records[0].cost_usd > 0 and records[1].cost_usd > 0 and all(r.cost_usd == 0 for r in records[2:])
