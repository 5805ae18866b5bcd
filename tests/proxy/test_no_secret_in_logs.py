import logging

import httpx
import pytest
from django.conf import settings

from routing.credentials import encrypt_secret
from routing.models import Provider
from tests.gateway import start_gateway, wait_for_usage

pytestmark = pytest.mark.django_db(transaction=True)


def test_no_log_line_holds_a_client_key_or_a_provider_credential(catalogue, api_key, caplog):
    # A provider whose stored key the upstream rejects: its 401 travels back through the gateway.
    Provider.objects.filter(pk=catalogue.pk).update(api_key_encrypted=encrypt_secret("sk-upstream-WRONG-secret"))
    caplog.set_level(logging.DEBUG)
    with start_gateway() as gateway:
        for model in ("gpt-4o-mini", "always-500", "slow", "nope", "bad-request"):
            httpx.post(
                f"{gateway.url}/v1/chat/completions",
                timeout=30,
                headers={"authorization": f"Bearer {api_key}"},
                json={"model": model, "messages": [{"role": "user", "content": "Hi"}]},
            )
        httpx.post(f"{gateway.url}/v1/chat/completions", headers={"authorization": f"Bearer {api_key}x"}, json={})
        records = wait_for_usage(5)

    assert records[0].status == 401 or any(r.status == 401 for r in records)  # the upstream's 401 came through
    logged = caplog.text
    assert logged  # the gateway did log (requests, errors): the check below has something to read
    for secret in (api_key, api_key[14:], "sk-upstream-WRONG-secret", settings.TOLLWAY_KEY_PEPPER):
        assert secret not in logged
