import httpx
import pytest

from routing.providers import http
from tests.upstreams.server import LoopbackServer, RequestLog, read_body


class CookieSettingUpstream:
    def __init__(self) -> None:
        self.log = RequestLog()

    async def __call__(self, scope, receive, send):
        self.log.record(scope, await read_body(receive))
        headers = [(b"content-type", b"application/json"), (b"set-cookie", b"session=tenant-a-secret; Path=/")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})


@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_a_cookie_set_by_an_upstream_is_never_sent_again(transport):
    upstream = CookieSettingUpstream()
    with LoopbackServer(upstream) as server:
        client = http.open_client(transport=transport)
        try:
            for _ in range(2):
                # A host name, not an IP: aiohttp's own jar would refuse cookies from an IP anyway.
                response = await client.post(f"http://localhost:{server.port}/v1/x", content=b"{}")
                assert response.status_code == 200
        finally:
            await http.close_client()
    assert [r["headers"].get("cookie") for r in upstream.log.requests] == [None, None]
    assert isinstance(client, httpx.AsyncClient)
