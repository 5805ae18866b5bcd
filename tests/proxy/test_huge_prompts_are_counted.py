"""Counting is total over any prompt the body limit admits: a text part of a million characters or more used
to make the tokenizer raise, a 500 under a TPM limit or budget and a 502 blaming the provider without one."""

import bpe_openai
import httpx
import pytest

from billing import token_estimate
from portal import services
from routing.models import Deployment
from tests.gateway import start_gateway, wait_for_usage

pytestmark = pytest.mark.django_db(transaction=True)

PROSE = "The quick brown fox jumps over the lazy dog, again and again. "
MB_1_5 = PROSE * 24_000  # 1.5 MB
MB_5 = PROSE * 80_000


def exact_count(text: str) -> int:
    """The tokenizer's own count, in pieces it accepts, cut after a space as its pre-tokenizer would."""
    encoding = bpe_openai.get_encoding("o200k_base")  # the reference tokenizer, native
    total, start = 0, 0
    while start < len(text):
        end = text.find(" ", start + 40_000) + 1 or min(start + 40_000, len(text))
        total += len(encoding.encode_ordinary(text[start:end]))
        start = end
    return total


@pytest.mark.parametrize("text", [MB_1_5, MB_5, "é" * 1_200_000, "日本語のテキスト" * 200_000])
def test_a_text_past_the_tokenizers_limit_is_counted_never_below_its_true_count(text):
    assert token_estimate.count_text(text) >= exact_count(text)
    assert token_estimate.count_prompt({"messages": [{"role": "user", "content": text}]}) >= exact_count(text)


def test_a_short_text_is_counted_exactly():
    text = PROSE * 100
    assert token_estimate.count_text(text) == len(bpe_openai.get_encoding("o200k_base").encode_ordinary(text))


def test_special_token_text_in_a_prompt_is_counted_as_text():
    assert token_estimate.count_text("<|endoftext|>") > 1


def test_content_parts_of_any_type_are_counted_without_error():
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}, "x", {"text": None}]}], "n": 1}
    assert token_estimate.count_prompt(body) == 6


def chat(gateway, key, content, path="/v1/chat/completions", model="gpt-4o-mini"):
    if path == "/v1/messages":
        body = {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": content}]}
    else:
        body = {"model": model, "messages": [{"role": "user", "content": content}]}
    return httpx.post(f"{gateway.url}{path}", json=body, headers={"authorization": f"Bearer {key}"}, timeout=60)


@pytest.fixture
def windows_unknown(catalogue):
    # What is tested here is counting a huge prompt, not the context check that would refuse it (tested below).
    Deployment.objects.update(context_window=None)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
@pytest.mark.parametrize("content", [MB_1_5, MB_5, "<|endoftext|>"], ids=["1.5MB", "5MB", "special-token"])
def test_a_huge_prompt_under_a_tpm_limit_is_served(transactional_db, team, windows_unknown, path, content):
    key = services.issue_api_key(team=team, name="limited", tpm_limit=100_000_000).secret
    with start_gateway() as gateway:
        response = chat(gateway, key, content, path=path)

    assert response.status_code == 200, response.text[:300]
    [record] = wait_for_usage(1)
    assert record.prompt_tokens > 0


def test_a_huge_prompt_to_an_upstream_that_reports_no_usage_is_estimated_not_blamed_on_it(windows_unknown, api_key):
    body = {"model": "no-usage", "stream": True, "messages": [{"role": "user", "content": MB_5}]}
    headers = {"authorization": f"Bearer {api_key}"}
    with start_gateway() as gateway:
        response = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers, timeout=60)

    assert response.status_code == 200, response.text[:300]
    assert response.text.endswith("data: [DONE]\n\n")
    [record] = wait_for_usage(1)
    assert record.estimated
    assert record.prompt_tokens >= exact_count(MB_5)


def test_a_prompt_larger_than_every_context_window_is_refused_before_any_upstream_call(gateway, api_key):
    response = chat(gateway, api_key, MB_1_5)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"
    [record] = wait_for_usage(1)
    assert (record.status, record.error_type, record.attempts) == (400, "context_length_exceeded", 0)
    assert record.decision["skipped"][0]["reason"] == "context"
