"""One gateway process against the programmable upstream: what the engine does with each kind of fault.

- A prompt too long for a deployment (its context_length_exceeded 400, or the catalogue's stated window)
  goes to a deployment with a larger context.
- A 429's Retry-After is honoured: the deployment is held (the next call goes straight to another one), and a
  retry of the same deployment waits that long, or is not made when the wait would overrun the call's deadline.
- A stream that stalls after its first chunk is never retried: the client has bytes already, so it gets the
  failure in-band, and the call has one record.
- A deployment that times out is not tried again (it may have done billable work); one that cannot be
  reached is failed over at once.
"""

import time
from decimal import Decimal

import httpx
import openai
import pytest

from routing.models import ModelAlias
from tests.factories import DeploymentFactory, ProviderFactory, make_alias
from tests.gateway import start_gateway, wait_for_usage
from tests.upstreams.openai_server import COMPLETION_TOKENS, PROMPT_TOKENS

pytestmark = pytest.mark.django_db(transaction=True)

SMALL_WINDOW = 8192
# About 10,000 tokens at four characters a token: over the small window, well within the large one.
LONG_PROMPT = "Summarise this. " + "lorem ipsum dolor sit amet " * 1500
INPUT_PER_1M, OUTPUT_PER_1M = Decimal("1.00"), Decimal("4.00")
ONE_ATTEMPTS_COST = (PROMPT_TOKENS * INPUT_PER_1M + COMPLETION_TOKENS * OUTPUT_PER_1M) / 1_000_000
TIMEOUT_S = 0.5  # the slow and the stalling deployments' provider timeout


def deployment(provider, name: str, **fields):
    """A deployment that sends its own name upstream as the model, so the upstream's log says which it was."""
    return DeploymentFactory(
        name=name, provider=provider, model=name, input_per_1m=INPUT_PER_1M, output_per_1m=OUTPUT_PER_1M, **fields
    )


def alias_of(name: str, *deployments, routing: dict | None = None) -> ModelAlias:
    alias = make_alias(name, *deployments)
    if routing is not None:
        alias.routing = routing
        alias.save()
    return alias


@pytest.fixture
def provider(faulty_upstream):
    return ProviderFactory(name="faulty", base_url=f"{faulty_upstream.url}/v1")


@pytest.fixture
def impatient_provider(faulty_upstream):
    """The same upstream with a short timeout: a delay or a stall past it is a timeout."""
    return ProviderFactory(name="faulty-impatient", base_url=f"{faulty_upstream.url}/v1", timeout_s=TIMEOUT_S)


def chat(gateway, key: str, alias: str, content: str = "Hi", **extra) -> httpx.Response:
    body = {"model": alias, "messages": [{"role": "user", "content": content}], **extra}
    headers = {"authorization": f"Bearer {key}"}
    return httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers, timeout=15)


def models_called(upstream) -> list[str]:
    return [call.model for call in upstream.calls]


# --- context windows -----------------------------------------------------------------------------------------


def test_a_context_length_error_fails_over_to_a_deployment_with_a_larger_context(faulty_upstream, provider, caller_key):
    # The catalogue does not state the small model's window: only its upstream's 400 tells.
    small = deployment(provider, "ctx-small", context_window=None)
    large = deployment(provider, "ctx-large", context_window=128_000)
    alias_of("long-prompts", small, large)
    faulty_upstream.limit_context("ctx-small", SMALL_WINDOW)
    with start_gateway() as gateway:
        short = chat(gateway, caller_key, "long-prompts")
        long = chat(gateway, caller_key, "long-prompts", LONG_PROMPT)

    assert (short.status_code, short.headers["x-tollway-deployment"]) == (200, "ctx-small")
    assert long.status_code == 200, long.text
    assert (long.headers["x-tollway-deployment"], long.headers["x-tollway-attempts"]) == ("ctx-large", "2")
    assert models_called(faulty_upstream) == ["ctx-small", "ctx-small", "ctx-large"]
    assert faulty_upstream.statuses("ctx-small") == {200: 1, 400: 1}
    records = wait_for_usage(2)
    assert [(r.status, r.deployment, r.attempts) for r in records] == [(200, "ctx-small", 1), (200, "ctx-large", 2)]
    assert records[1].cost_usd == ONE_ATTEMPTS_COST  # the refused attempt costs nothing


def test_a_deployment_whose_stated_context_is_too_small_is_skipped_without_being_called(
    faulty_upstream, provider, caller_key
):
    small = deployment(provider, "stated-small", context_window=SMALL_WINDOW)
    alias_of("stated-windows", small, deployment(provider, "stated-large", context_window=128_000))
    with start_gateway() as gateway:
        response = chat(gateway, caller_key, "stated-windows", LONG_PROMPT)

    assert response.status_code == 200, response.text
    assert (response.headers["x-tollway-deployment"], response.headers["x-tollway-attempts"]) == ("stated-large", "1")
    assert "1 skipped: context" in response.headers["x-tollway-route"]
    assert models_called(faulty_upstream) == ["stated-large"]


def test_a_context_length_error_with_no_larger_deployment_reaches_the_client_as_the_providers_400(
    faulty_upstream, provider, caller_key
):
    alias_of("only-small", deployment(provider, "only-small"))
    faulty_upstream.limit_context("only-small", SMALL_WINDOW)
    with start_gateway() as gateway:
        response = chat(gateway, caller_key, "only-small", LONG_PROMPT)

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("context_length_exceeded", "messages")
    assert "maximum context length is 8192 tokens" in error["message"]
    [record] = wait_for_usage(1)
    assert (record.status, record.attempts, record.cost_usd) == (400, 1, 0)


# --- 429 and Retry-After -------------------------------------------------------------------------------------


def test_a_429_holds_the_deployment_so_the_next_call_goes_straight_to_the_next_one(
    faulty_upstream, provider, caller_key
):
    alias_of("held", deployment(provider, "held-limited"), deployment(provider, "held-healthy"))
    faulty_upstream.rate_limit("held-limited", retry_after_s=30)
    with start_gateway() as gateway:
        first, second = chat(gateway, caller_key, "held"), chat(gateway, caller_key, "held")

    assert (first.status_code, first.headers["x-tollway-attempts"]) == (200, "2"), first.text
    assert (second.status_code, second.headers["x-tollway-attempts"]) == (200, "1"), second.text
    assert first.headers["x-tollway-deployment"] == second.headers["x-tollway-deployment"] == "held-healthy"
    # Held for its Retry-After: the second call did not knock on it again.
    assert models_called(faulty_upstream) == ["held-limited", "held-healthy", "held-healthy"]
    assert "skipped" in second.headers["x-tollway-route"]
    records = wait_for_usage(2)
    assert [(r.deployment, r.attempts, r.cost_usd) for r in records] == [
        ("held-healthy", 2, ONE_ATTEMPTS_COST),
        ("held-healthy", 1, ONE_ATTEMPTS_COST),
    ]


def test_a_retry_of_a_rate_limited_deployment_waits_for_its_retry_after(faulty_upstream, provider, caller_key):
    alias_of(
        "lone", deployment(provider, "lone-limited"), routing={"strategy": "priority", "retry": {"max_attempts": 2}}
    )
    faulty_upstream.rate_limit("lone-limited", retry_after_s=1, times=1)
    with start_gateway() as gateway:
        response = chat(gateway, caller_key, "lone")

    assert (response.status_code, response.headers["x-tollway-attempts"]) == (200, "2"), response.text
    first, retry = faulty_upstream.calls
    assert (first.status, retry.status) == (429, 200)
    # The upstream asked for a second; the engine's backoff alone (100 ms base) would have been shorter.
    assert retry.at - first.at >= 1.0 - 0.02, f"retried after {retry.at - first.at:.3f} s"
    [record] = wait_for_usage(1)
    assert (record.status, record.attempts, record.cost_usd) == (200, 2, ONE_ATTEMPTS_COST)


def test_a_retry_after_longer_than_the_calls_deadline_is_not_waited_for(faulty_upstream, provider, caller_key):
    routing = {"strategy": "priority", "retry": {"max_attempts": 3, "deadline_ms": 5000}}
    alias_of("deadline", deployment(provider, "deadline-limited"), routing=routing)
    faulty_upstream.rate_limit("deadline-limited", retry_after_s=60)
    with start_gateway() as gateway:
        started = time.monotonic()
        response = chat(gateway, caller_key, "deadline")  # times out after 15 s if the gateway waited
        took_s = time.monotonic() - started

    assert response.status_code == 429, response.text
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert int(response.headers["retry-after"]) >= 1
    assert models_called(faulty_upstream) == ["deadline-limited"]
    print(f"answered 429 after {took_s:.3f} s")
    [record] = wait_for_usage(1)
    assert (record.status, record.attempts, record.cost_usd) == (429, 1, 0)


# --- streams and timeouts ------------------------------------------------------------------------------------


def test_a_stream_that_stalls_after_its_first_chunk_is_not_retried_and_the_client_gets_the_error_in_band(
    faulty_upstream, impatient_provider, provider, caller_key
):
    alias_of("stalls", deployment(impatient_provider, "stalling"), deployment(provider, "stall-backup"))
    faulty_upstream.stall_stream("stalling", after_chunks=2)
    with start_gateway() as gateway:
        client = openai.OpenAI(api_key=caller_key, base_url=f"{gateway.url}/v1", max_retries=0, timeout=15)
        received: list[str] = []
        with pytest.raises(openai.APIError) as raised:
            for chunk in client.chat.completions.create(
                model="stalls", messages=[{"role": "user", "content": "Hi"}], stream=True
            ):
                received.extend(choice.delta.content or "" for choice in chunk.choices)

    assert received == ["", "Hello"]  # the role chunk and the first piece, then nothing until the timeout
    assert "stalling" in str(raised.value) and "broke off" in str(raised.value)
    assert models_called(faulty_upstream) == ["stalling"]  # the backup was never asked
    [record] = wait_for_usage(1)
    assert (record.status, record.error_type, record.deployment, record.attempts, record.stream) == (
        200,
        "upstream_stream_error",
        "stalling",
        1,
        True,
    )


def test_a_deployment_that_times_out_is_not_tried_again_nor_failed_over(
    faulty_upstream, impatient_provider, provider, caller_key
):
    routing = {"strategy": "priority", "retry": {"max_attempts": 3}}
    alias_of(
        "slow-first", deployment(impatient_provider, "too-slow"), deployment(provider, "slow-backup"), routing=routing
    )
    faulty_upstream.delay("too-slow", 3 * TIMEOUT_S)
    with start_gateway() as gateway:
        response = chat(gateway, caller_key, "slow-first")

    # A read timeout may come after the upstream started billable work: trying elsewhere could bill twice.
    assert response.status_code == 504, response.text
    assert response.json()["error"]["code"] == "upstream_timeout"
    assert models_called(faulty_upstream) == ["too-slow"]
    [record] = wait_for_usage(1)
    assert (record.status, record.deployment, record.attempts, record.cost_usd) == (504, "too-slow", 1, 0)


def test_a_deployment_that_cannot_be_reached_is_failed_over_at_once(faulty_upstream, provider, caller_key):
    nowhere = ProviderFactory(name="nowhere", base_url="http://127.0.0.1:9/v1")  # the discard port: refused
    alias_of("unreachable-first", deployment(nowhere, "unreachable"), deployment(provider, "reachable"))
    with start_gateway() as gateway:
        response = chat(gateway, caller_key, "unreachable-first")

    assert response.status_code == 200, response.text
    assert (response.headers["x-tollway-deployment"], response.headers["x-tollway-attempts"]) == ("reachable", "2")
    assert models_called(faulty_upstream) == ["reachable"]
    [record] = wait_for_usage(1)
    assert (record.status, record.attempts, record.cost_usd) == (200, 2, ONE_ATTEMPTS_COST)
