"""The whole approval journey through the REST API alone, against a real gateway: a platform admin builds the
catalogue and a product, a team owner subscribes, the tenant admin approves, the owner's key calls the model,
and a suspension closes it again within 5 s."""

import time

import openai
import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from tests.gateway import start_gateway
from tests.upstreams import openai_server

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "journey-passphrase-1"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


def signed_in(email: str) -> APIClient:
    client = APIClient()
    answer = client.post("/api/v1/auth/token", {"email": email, "password": PASSWORD}, format="json")
    assert answer.status_code == 200, answer.content
    client.credentials(HTTP_AUTHORIZATION=f"Token {answer.json()['token']}")
    return client


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.content
    return response.json()


def status_of(gateway_url: str, key: str) -> int:
    client = openai.OpenAI(base_url=f"{gateway_url}/v1", api_key=key, max_retries=0)
    try:
        completion = client.chat.completions.create(**CHAT)
    except openai.APIStatusError as exc:
        return exc.status_code
    assert completion.choices[0].message.content == openai_server.REPLY
    return 200


def wait_for_status(gateway_url: str, key: str, expected: int, *, bound_s: float = 5.0) -> None:
    """The gateway reloads keys and subscriptions in the background (every 0.5 s in tests)."""
    deadline = time.monotonic() + bound_s
    seen = status_of(gateway_url, key)
    while seen != expected and time.monotonic() < deadline:
        time.sleep(0.1)
        seen = status_of(gateway_url, key)
    assert seen == expected, f"still {seen} after {bound_s} s"


def test_a_subscription_approved_through_the_api_opens_the_model_and_a_suspension_closes_it(openai_upstream):
    call_command("create_user", "--email", "root@platform.test", "--password", PASSWORD, "--platform-admin")
    call_command(
        "create_user", "--email", "admin@acme.test", "--password", PASSWORD, "--tenant", "Acme",
        "--role", "tenant_admin",
    )  # fmt: skip
    call_command(
        "create_user", "--email", "owner@acme.test", "--password", PASSWORD, "--tenant", "Acme",
        "--team", "Checkout", "--role", "team_owner",
    )  # fmt: skip
    root, admin, owner = (signed_in(f"{who}.test") for who in ("root@platform", "admin@acme", "owner@acme"))

    # The platform admin builds the catalogue and publishes a product over one alias.
    ok(
        root.post(
            "/api/v1/catalogue/providers",
            {
                "name": "openai-test",
                "kind": "openai-compatible",
                "base_url": f"{openai_upstream.url}/v1",
                "api_key": "sk-upstream-test",
            },
            format="json",
        ),
        201,
    )
    ok(
        root.post(
            "/api/v1/catalogue/deployments",
            {
                "name": "main-gpt-4o-mini",
                "provider": "openai-test",
                "model": "gpt-4o-mini",
                "input_per_1m": "0.15",
                "output_per_1m": "0.60",
            },
            format="json",
        ),
        201,
    )
    ok(
        root.post(
            "/api/v1/catalogue/aliases", {"name": "gpt-4o-mini", "deployments": ["main-gpt-4o-mini"]}, format="json"
        ),
        201,
    )
    product = ok(root.post("/api/v1/products", {"name": "Mini", "aliases": ["gpt-4o-mini"]}, format="json"), 201)

    # The team owner finds their team and asks for the product.
    [team] = ok(owner.get("/api/v1/teams"))["results"]
    subscription = ok(
        owner.post(
            "/api/v1/subscriptions",
            {"product": product["id"], "team": team["id"], "purpose": "checkout assistant"},
            format="json",
        ),
        201,
    )
    assert subscription["status"] == "pending"

    with start_gateway() as gateway:
        # The tenant admin approves; the owner makes a key, whose secret is shown this once.
        [pending] = ok(admin.get("/api/v1/subscriptions?status=pending"))["results"]
        assert ok(admin.post(f"/api/v1/subscriptions/{pending['id']}/approve/"))["status"] == "active"
        issued = ok(owner.post("/api/v1/keys", {"team": team["id"], "name": "checkout"}, format="json"), 201)
        assert issued["source"] == "portal"
        [listed] = ok(owner.get("/api/v1/keys"))["results"]
        assert "secret" not in listed and issued["secret"].startswith(listed["prefix"])

        wait_for_status(gateway.url, issued["secret"], 200)

        suspended = ok(
            admin.post(f"/api/v1/subscriptions/{pending['id']}/suspend", {"reason": "over budget"}, format="json")
        )
        assert suspended["status"] == "suspended"
        wait_for_status(gateway.url, issued["secret"], 403)
