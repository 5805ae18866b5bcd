"""`POST /v1/messages/count_tokens`, as the official anthropic SDK calls it (`client.messages.count_tokens`),
and Anthropic-style errors on every /v1/messages* path, including those raised before any view."""

import anthropic
import bpe_openai
import httpx
import pytest

from billing import token_estimate
from portal import services
from tests.gateway import start_gateway, wait_for_usage

pytestmark = pytest.mark.django_db(transaction=True)

HI = [{"role": "user", "content": "Hello there, how are you today?"}]
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def sdk(gateway, key) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)


def assert_anthropic_error(response: httpx.Response, status: int, error_type: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    payload = response.json()
    assert payload["type"] == "error"
    assert set(payload["error"]) == {"type", "message"}
    assert payload["error"]["type"] == error_type
    return payload["error"]["message"]


def test_the_sdk_counts_a_prompts_tokens(gateway, api_key):
    counted = sdk(gateway, api_key).messages.count_tokens(model="gpt-4o-mini", messages=HI, system="Be brief.")

    chat_messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": HI[0]["content"]}]
    assert counted.input_tokens == token_estimate.count_prompt({"messages": chat_messages})


def test_tools_count_towards_the_prompt(gateway, api_key):
    client = sdk(gateway, api_key)
    without = client.messages.count_tokens(model="gpt-4o-mini", messages=HI).input_tokens
    with_tool = client.messages.count_tokens(model="gpt-4o-mini", messages=HI, tools=[WEATHER_TOOL]).input_tokens

    assert with_tool > without


def test_counting_leaves_one_usage_record_at_zero_cost(gateway, api_key):
    sdk(gateway, api_key).messages.count_tokens(model="gpt-4o-mini", messages=HI)

    [record] = wait_for_usage(1)
    assert (record.endpoint, record.alias, record.status) == ("messages.count_tokens", "gpt-4o-mini", 200)
    assert record.cost_usd == 0
    assert record.deployment == ""


def test_counting_respects_the_keys_alias_scope(transactional_db, catalogue, team):
    key = services.issue_api_key(team=team, allowed_aliases=["embed"]).secret
    with start_gateway() as gateway, pytest.raises(anthropic.PermissionDeniedError) as refused:
        sdk(gateway, key).messages.count_tokens(model="gpt-4o-mini", messages=HI)

    assert refused.value.body["error"]["type"] == "permission_error"
    [record] = wait_for_usage(1)
    assert record.status == 403


def test_an_unknown_model_is_a_not_found_error(gateway, api_key):
    with pytest.raises(anthropic.NotFoundError):
        sdk(gateway, api_key).messages.count_tokens(model="no-such-model", messages=HI)


def test_an_unknown_path_under_messages_is_an_anthropic_404(gateway, api_key):
    response = httpx.post(f"{gateway.url}/v1/messages/batches", json={}, headers={"x-api-key": api_key})

    assert_anthropic_error(response, 404, "not_found_error")


def test_a_missing_key_is_an_anthropic_401_on_both_paths(gateway):
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        response = httpx.post(f"{gateway.url}{path}", json={"model": "gpt-4o-mini", "messages": HI})
        assert_anthropic_error(response, 401, "authentication_error")


def test_a_body_too_large_is_an_anthropic_413(gateway, api_key, settings):
    content = b'{"model":"gpt-4o-mini","pad":"' + b"x" * settings.TOLLWAY_MAX_BODY_BYTES + b'"}'
    response = httpx.post(
        f"{gateway.url}/v1/messages/count_tokens", content=content, headers={"x-api-key": api_key}, timeout=30
    )

    assert_anthropic_error(response, 413, "request_too_large")


def test_an_unsupported_encoding_is_an_anthropic_415(gateway, api_key):
    headers = {"x-api-key": api_key, "content-encoding": "br"}
    response = httpx.post(f"{gateway.url}/v1/messages/count_tokens", content=b"{}", headers=headers)

    assert_anthropic_error(response, 415, "invalid_request_error")


def test_a_malformed_body_is_an_anthropic_400(gateway, api_key):
    for content in (b"{not json", b'{"model":"gpt-4o-mini","messages":"Hi"}'):
        response = httpx.post(
            f"{gateway.url}/v1/messages/count_tokens", content=content, headers={"x-api-key": api_key}
        )
        assert_anthropic_error(response, 400, "invalid_request_error")


def test_a_get_on_count_tokens_is_an_anthropic_405(gateway, api_key):
    response = httpx.get(f"{gateway.url}/v1/messages/count_tokens", headers={"x-api-key": api_key})

    assert_anthropic_error(response, 405, "invalid_request_error")


def test_a_prompt_past_the_tokenizers_own_limit_is_counted_in_full(gateway, api_key):
    sentence = "The quick brown fox jumps over the lazy dog, again and again. "
    prose = sentence * 24_000  # 1.5 MB: the tokenizer alone refuses a million characters
    counted = sdk(gateway, api_key).messages.count_tokens(
        model="gpt-4o-mini", messages=[{"role": "user", "content": prose}]
    )

    half = len(bpe_openai.get_encoding("o200k_base").encode_ordinary(sentence * 12_000))
    # Exact but for a token at most where the text was cut into slices.
    slices = len(prose) / token_estimate.SLICE_CHARS
    assert abs(counted.input_tokens - (6 + 2 * half)) <= slices + 1
