"""A provider's 4xx is the caller's mistake, not the provider's failure: the router must not try the next
deployment (it would bill the call twice, or answer a request the first provider rightly refused)."""

import httpx
import pytest

from routing.models import Deployment
from tests.factories import make_alias
from tests.gateway import start_gateway, wait_for_usage

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def gateway(catalogue, api_key):
    # A 400 deployment first, a healthy one behind it: the pairing that shows a fail-over that should not be.
    make_alias(
        "bad-then-good",
        Deployment.objects.get(name="bad-request"),
        Deployment.objects.get(name="main-gpt-4o-mini"),
    )
    with start_gateway() as server:
        yield server


def chat(gateway, api_key, **extra) -> httpx.Response:
    body = {"model": "bad-then-good", "messages": [{"role": "user", "content": "Hi"}], **extra}
    return httpx.post(
        f"{gateway.url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {api_key}"}, timeout=10
    )


def upstream_models(openai_upstream) -> list[str]:
    return [entry["json"]["model"] for entry in openai_upstream.log.requests]


@pytest.mark.parametrize("stream", [False, True], ids=["completion", "stream"])
def test_a_400_from_the_first_deployment_reaches_the_client_and_the_second_is_never_called(
    gateway, api_key, openai_upstream, stream
):
    response = chat(gateway, api_key, stream=stream)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"] == "Invalid value for 'temperature'." and error["param"] == "temperature"
    assert upstream_models(openai_upstream) == ["bad-request"]
    [record] = wait_for_usage(1)
    assert (record.status, record.deployment, record.attempts) == (400, "bad-request", 1)
