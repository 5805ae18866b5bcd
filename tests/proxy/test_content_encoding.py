"""Compressed /v1 bodies: gzip and deflate are inflated, bounded by TOLLWAY_MAX_BODY_BYTES after decompression
(a bomb gets 413); any other Content-Encoding gets 415 saying so. Each call leaves its usage record."""

import gzip
import zlib

import httpx
import orjson
import pytest

from tests.gateway import wait_for_usage

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]})
MESSAGES = orjson.dumps({"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "Hi"}]})


def post(gateway, key, content: bytes, encoding: str, path="/v1/chat/completions"):
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json", "content-encoding": encoding}
    return httpx.post(f"{gateway.url}{path}", content=content, headers=headers, timeout=30)


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("deflate", lambda data: zlib.compress(data, wbits=-15))],
)
def test_a_compressed_chat_body_is_served(gateway, api_key, encoding, compress):
    response = post(gateway, api_key, compress(CHAT), encoding)

    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"]


def test_a_gzip_bomb_is_refused_with_413_after_decompression(gateway, api_key, settings):
    bomb = gzip.compress(b" " * (settings.TOLLWAY_MAX_BODY_BYTES * 4), compresslevel=9)
    assert len(bomb) < settings.TOLLWAY_MAX_BODY_BYTES

    response = post(gateway, api_key, bomb, "gzip")

    assert response.status_code == 413, response.text
    assert "decompressed" in response.json()["error"]["message"]
    [record] = wait_for_usage(1)
    assert record.status == 413


@pytest.mark.parametrize("encoding", ["br", "zstd", "bogus"])
def test_another_content_encoding_is_refused_with_415_that_says_so(gateway, api_key, encoding):
    response = post(gateway, api_key, CHAT, encoding)

    assert response.status_code == 415, response.text
    error = response.json()["error"]
    assert error["code"] == "unsupported_content_encoding"
    assert encoding in error["message"] and "gzip" in error["message"]
    [record] = wait_for_usage(1)
    assert (record.status, record.error_type) == (415, "unsupported_content_encoding")


def test_a_415_on_messages_is_anthropic_style(gateway, api_key):
    response = post(gateway, api_key, MESSAGES, "br", path="/v1/messages")

    assert response.status_code == 415
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_a_compressed_body_sent_without_its_encoding_is_told_it_is_not_utf8(gateway, api_key):
    headers = {"authorization": f"Bearer {api_key}", "content-type": "application/json"}
    response = httpx.post(f"{gateway.url}/v1/chat/completions", content=gzip.compress(CHAT), headers=headers)

    assert response.status_code == 400
    assert "not valid UTF-8" in response.json()["error"]["message"]
    assert "surrogates" not in response.json()["error"]["message"]


def test_a_large_gzip_body_is_read_whole(gateway, api_key):
    # Compressed, it is a fraction of its Content-Length once inflated; the view must still read all of it.
    prose = "The quick brown fox jumps over the lazy dog. " * 20_000
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prose + "END"}]})

    response = post(gateway, api_key, gzip.compress(body), "gzip", path="/v1/messages/count_tokens")

    assert response.status_code == 200, response.text
    assert response.json()["input_tokens"] > 180_000
