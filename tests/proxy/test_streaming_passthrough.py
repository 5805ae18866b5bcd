"""Streams go through chunk by chunk, and a client that hangs up cancels the upstream call."""

import asyncio
import threading

import httpx
import orjson
import pytest

from portal import services
from tests.factories import DeploymentFactory, ProviderFactory, TeamFactory, make_alias
from tests.gateway import start_gateway, wait_for_usage
from tests.upstreams.server import LoopbackServer, read_body

pytestmark = pytest.mark.django_db(transaction=True)


class GatedUpstream:
    """Sends one chunk, then holds the rest until the test opens the gate; notes if its client went away."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.saw_disconnect = threading.Event()
        self.finished = threading.Event()

    async def __call__(self, scope, receive, send):
        await read_body(receive)

        def chunk(delta: dict, finish=None) -> bytes:
            body = {
                "id": "c1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "m",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return b"data: " + orjson.dumps(body) + b"\n\n"

        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await send(
            {"type": "http.response.body", "body": chunk({"role": "assistant", "content": "first"}), "more_body": True}
        )

        async def watch():
            while (await receive())["type"] != "http.disconnect":
                pass
            self.saw_disconnect.set()

        watcher = asyncio.ensure_future(watch())
        while not self.gate.is_set() and not self.saw_disconnect.is_set():
            await asyncio.sleep(0.01)
        if self.saw_disconnect.is_set():
            return
        watcher.cancel()
        usage = {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "m",
            "choices": [],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
        await send({"type": "http.response.body", "body": chunk({"content": " second"}, "stop"), "more_body": True})
        await send({"type": "http.response.body", "body": b"data: " + orjson.dumps(usage) + b"\n\ndata: [DONE]\n\n"})
        self.finished.set()


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
        "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "gated", "messages": [{"role": "user", "content": "Hi"}], "stream": True},
    )


def test_the_first_chunk_reaches_the_client_while_the_upstream_is_still_writing(gated):
    upstream, gateway, key = gated
    with httpx.Client(base_url=gateway.url, timeout=10) as client, open_stream(client, key) as response:
        lines = response.iter_lines()
        first = next(line for line in lines if line.startswith("data:"))
        # Had the gateway buffered the stream, this line could not have arrived: the upstream is still held.
        assert "first" in first and not upstream.finished.is_set()
        upstream.gate.set()
        rest = [line for line in lines if line.startswith("data:")]
    assert "second" in rest[0] and rest[-1] == "data: [DONE]"
    [record] = wait_for_usage(1)
    assert (record.status, record.prompt_tokens, record.completion_tokens) == (200, 3, 2)


def test_a_client_that_hangs_up_mid_stream_cancels_the_upstream_and_is_recorded(gated):
    upstream, gateway, key = gated
    with httpx.Client(base_url=gateway.url, timeout=10) as client, open_stream(client, key) as response:
        first = next(line for line in response.iter_lines() if line.startswith("data:"))
        assert "first" in first
    # Leaving the block closed the connection with the upstream still holding its second chunk.

    assert upstream.saw_disconnect.wait(timeout=5)
    [record] = wait_for_usage(1)  # exactly one record, even though the stream never finished
    assert record.status == 499 and record.error_type == "client_disconnected"
    assert record.stream and record.estimated and record.completion_tokens >= 1
