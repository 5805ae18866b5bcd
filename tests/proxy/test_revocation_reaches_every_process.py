import time

import httpx
import pytest

from portal import services
from portal.models import APIKey
from tests.gateway_process import GatewayProcess

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


def status_of(client: httpx.Client, key: str) -> int:
    # A fresh connection each time, so the kernel spreads requests over both worker processes.
    return client.post(
        "/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {key}", "connection": "close"}
    ).status_code


def test_a_revoked_key_is_refused_by_every_process_within_five_seconds(catalogue, api_key, tmp_path):
    env = {"TOLLWAY_SNAPSHOT_REFRESH_S": "2"}  # the production default
    with (
        GatewayProcess(workers=2, env=env, outbox_dir=tmp_path) as gateway,
        httpx.Client(base_url=gateway.url, timeout=10) as client,
    ):
        assert {status_of(client, api_key) for _ in range(10)} == {200}

        services.revoke_api_key(api_key=APIKey.objects.get())
        revoked_at = time.monotonic()
        # Refused 20 times in a row (over fresh connections to both processes) means every process knows.
        streak = 0
        while streak < 20 and time.monotonic() - revoked_at < 10:
            streak = streak + 1 if status_of(client, api_key) == 401 else 0
        elapsed = time.monotonic() - revoked_at

    assert streak == 20
    assert elapsed <= 5.0, f"revocation took {elapsed:.1f} s to reach every process"
