"""Every /v1 error answers with its status and an OpenAI-style body, and never leaks a secret."""

import time

import httpx
import pytest

from portal import services
from portal.models import APIKey
from tests.gateway import wait_for_usage

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


def post(gateway, key, body=None, *, content=None, path="/v1/chat/completions", headers=None):
    headers = {"authorization": f"Bearer {key}", **(headers or {})} if key else dict(headers or {})
    return httpx.post(
        f"{gateway.url}{path}", json=body if content is None else None, content=content, headers=headers, timeout=30
    )


def assert_openai_error(response, status: int, *, code=None, param=None):
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    assert response.headers["x-request-id"].startswith("req_")
    return error


def test_a_missing_key_is_refused_with_401(gateway):
    assert_openai_error(post(gateway, None, CHAT), 401, code="invalid_api_key")


def test_an_unknown_key_is_refused_with_401(gateway, api_key):
    forged = api_key[:-4] + ("AAAA" if not api_key.endswith("AAAA") else "BBBB")
    assert_openai_error(post(gateway, forged, CHAT), 401, code="invalid_api_key")


def test_the_stored_hash_is_not_accepted_as_a_key(gateway, api_key):
    stored_hash = APIKey.objects.get().secret_hash
    assert_openai_error(post(gateway, stored_hash, CHAT), 401)


def test_a_revoked_key_stops_working_within_the_refresh_bound(gateway, api_key):
    assert post(gateway, api_key, CHAT).status_code == 200
    services.revoke_api_key(api_key=APIKey.objects.get())

    # TOLLWAY_SNAPSHOT_REFRESH_S is 0.5 s in tests; 5 s is the bound we promise.
    statuses = []
    for _ in range(50):
        statuses.append(post(gateway, api_key, CHAT).status_code)
        if statuses[-1] == 401:
            break
        time.sleep(0.1)
    assert statuses[-1] == 401, statuses


def test_an_expired_key_is_refused_with_401(transactional_db, catalogue, team):
    from datetime import timedelta

    from django.utils import timezone

    from tests.gateway import start_gateway

    secret = services.issue_api_key(team=team, expires_at=timezone.now() - timedelta(seconds=1)).secret
    with start_gateway() as gateway:
        error = assert_openai_error(post(gateway, secret, CHAT), 401)
    assert "expired" in error["message"]


def test_an_alias_outside_the_keys_scope_is_refused_with_403(transactional_db, catalogue, team):
    from tests.gateway import start_gateway

    secret = services.issue_api_key(team=team, allowed_aliases=["failover"]).secret
    with start_gateway() as gateway:
        assert_openai_error(post(gateway, secret, CHAT), 403, code="model_not_allowed", param="model")
        assert post(gateway, secret, {**CHAT, "model": "failover"}).status_code == 200
        models = httpx.get(f"{gateway.url}/v1/models", headers={"authorization": f"Bearer {secret}"}).json()
    assert [m["id"] for m in models["data"]] == ["failover"]


def test_an_unknown_alias_is_404(gateway, api_key):
    assert_openai_error(post(gateway, api_key, {**CHAT, "model": "nope"}), 404, code="model_not_found", param="model")


def test_malformed_json_is_400_and_still_recorded(gateway, api_key):
    response = post(
        gateway,
        api_key,
        content=b'{"model": "gpt-4o-mini", "messages": [',
        headers={"content-type": "application/json"},
    )

    assert_openai_error(response, 400)
    [record] = wait_for_usage(1)
    assert record.status == 400 and record.request_id == response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "Hi"}]}, "model"),
        ({"model": "gpt-4o-mini", "messages": []}, "messages"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({**CHAT, "temperature": 7}, "temperature"),
        ({**CHAT, "n": 0}, "n"),
        ({**CHAT, "stream": "yes"}, "stream"),
    ],
)
def test_invalid_fields_are_400_naming_the_field(gateway, api_key, body, param):
    assert_openai_error(post(gateway, api_key, body), 400, param=param)


def test_a_body_over_the_limit_is_413(gateway, api_key, settings):
    huge = {**CHAT, "messages": [{"role": "user", "content": "x" * (9 * 1024 * 1024)}]}
    assert_openai_error(post(gateway, api_key, huge), 413, code="request_too_large")
    [record] = wait_for_usage(1)
    assert record.status == 413


def test_a_key_over_its_rpm_limit_gets_429_with_retry_after(transactional_db, catalogue, team):
    from tests.gateway import start_gateway

    secret = services.issue_api_key(team=team, rpm_limit=2).secret
    with start_gateway() as gateway:
        statuses = [post(gateway, secret, CHAT) for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert_openai_error(statuses[2], 429, code="requests_per_minute_exceeded")
    assert 1 <= int(statuses[2].headers["retry-after"]) <= 60


def test_an_upstream_429_on_every_deployment_is_429_with_retry_after(gateway, api_key):
    response = post(gateway, api_key, {**CHAT, "model": "rate-limited"})
    assert_openai_error(response, 429)
    assert response.headers["retry-after"] == "7"


def test_every_deployment_failing_is_502_naming_them(gateway, api_key):
    error = assert_openai_error(post(gateway, api_key, {**CHAT, "model": "always-500"}), 502)
    assert "broken-500" in error["message"] or "server had an error" in error["message"]


def test_every_deployment_timing_out_is_504(gateway, api_key):
    # The test provider's read timeout is 2 s; the "slow" upstream answers after 3 s.
    error = assert_openai_error(post(gateway, api_key, {**CHAT, "model": "slow"}), 504)
    assert "slow" in error["message"]


def test_an_upstream_400_comes_back_with_the_providers_message(gateway, api_key):
    error = assert_openai_error(post(gateway, api_key, {**CHAT, "model": "bad-request"}), 400, param="temperature")
    assert error["message"] == "Invalid value for 'temperature'."


def test_an_unknown_v1_path_is_a_json_404(gateway, api_key):
    response = httpx.get(f"{gateway.url}/v1/nothing-here", headers={"authorization": f"Bearer {api_key}"})
    assert_openai_error(response, 404)


def test_no_error_body_or_record_carries_a_secret(gateway, api_key):
    bodies = [post(gateway, api_key, {**CHAT, "model": m}).text for m in ("always-500", "slow", "bad-request", "nope")]
    records = wait_for_usage(4)
    dumped = " ".join(bodies) + " ".join(str(vars(r)) for r in records)
    assert api_key not in dumped and api_key[14:] not in dumped
    assert "sk-upstream-test" not in dumped
    assert "Traceback" not in dumped
