"""A portal key calls only the aliases of its team's active subscriptions; approval, suspension and revocation
reach every gateway process within 5 s."""

import time

import httpx
import pytest
from django.contrib.auth import get_user_model

from portal import services
from portal.models import APIKey, Membership, Product
from routing.models import ModelAlias
from tests.gateway_process import GatewayProcess

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


def status_of(client: httpx.Client, key: str, model: str = "gpt-4o-mini") -> int:
    headers = {"authorization": f"Bearer {key}", "connection": "close"}
    return client.post("/v1/chat/completions", json={**CHAT, "model": model}, headers=headers).status_code


def wait_for(client, key, expected: int, *, model="gpt-4o-mini", bound_s=5.0) -> float:
    """Seconds until 20 requests in a row (fresh connections, so both processes) answer `expected`."""
    started, streak = time.monotonic(), 0
    while streak < 20 and time.monotonic() - started < 10:
        streak = streak + 1 if status_of(client, key, model) == expected else 0
    elapsed = time.monotonic() - started
    assert streak == 20, f"never settled on {expected}"
    assert elapsed <= bound_s, f"took {elapsed:.1f} s"
    return elapsed


def test_subscription_decisions_reach_every_process_within_five_seconds(catalogue, team, tmp_path):
    User = get_user_model()
    owner = User.objects.create_user(username="o@acme.test", email="o@acme.test", password="pw-1234567")
    admin = User.objects.create_user(username="a@acme.test", email="a@acme.test", password="pw-1234567")
    Membership.objects.create(user=owner, tenant=team.tenant, team=team, role=Membership.Role.TEAM_OWNER)
    Membership.objects.create(user=admin, tenant=team.tenant, role=Membership.Role.TENANT_ADMIN)
    product = Product.objects.create(name="Mini", requires_approval=True)
    product.aliases.set([ModelAlias.objects.get(name="gpt-4o-mini")])
    subscription = services.request_subscription(team=team, product=product, purpose="bot", requested_by=owner)
    key = services.issue_api_key(team=team, source=APIKey.Source.PORTAL, created_by=owner).secret

    env = {"TOLLWAY_SNAPSHOT_REFRESH_S": "2"}  # the production default
    with (
        GatewayProcess(workers=2, env=env, outbox_dir=tmp_path) as gateway,
        httpx.Client(base_url=gateway.url, timeout=10) as client,
    ):
        # Pending: the alias exists but this key may not use it yet.
        assert status_of(client, key) == 403

        services.approve_subscription(subscription=subscription, decided_by=admin)
        wait_for(client, key, 200)
        # Aliases outside the subscribed product stay closed.
        assert status_of(client, key, "failover") == 403

        services.suspend_subscription(subscription=subscription, decided_by=admin, reason="over budget")
        wait_for(client, key, 403)

        services.resume_subscription(subscription=subscription, decided_by=admin)
        wait_for(client, key, 200)

        services.revoke_api_key(api_key=APIKey.objects.get(source=APIKey.Source.PORTAL))
        wait_for(client, key, 401)


def test_an_operator_key_keeps_its_direct_grant_without_subscriptions(catalogue, team, tmp_path):
    key = services.issue_api_key(team=team, allowed_aliases=["failover"]).secret
    with GatewayProcess(workers=1, outbox_dir=tmp_path) as gateway, httpx.Client(base_url=gateway.url) as client:
        assert status_of(client, key, "failover") == 200
        assert status_of(client, key, "gpt-4o-mini") == 403
