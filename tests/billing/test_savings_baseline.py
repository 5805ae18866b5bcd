"""Savings: each record carries what its tokens would have cost on the alias's baseline deployment."""

from decimal import Decimal

import httpx
import pytest

from portal import services
from routing.models import ModelAlias
from tests.factories import DeploymentFactory, make_alias
from tests.gateway import start_gateway, wait_for_usage

pytestmark = pytest.mark.django_db(transaction=True)
CHAT = {"model": "routed", "messages": [{"role": "user", "content": "Hi"}]}


def call(url: str, key: str) -> None:
    response = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text


@pytest.fixture
def routed(catalogue):
    """Answered by a cheap deployment first; a dear one stands behind it for fail-over."""
    cheap = DeploymentFactory(name="cheap", provider=catalogue, input_per_1m=Decimal("1"), output_per_1m=Decimal("2"))
    dear = DeploymentFactory(name="dear", provider=catalogue, input_per_1m=Decimal("10"), output_per_1m=Decimal("40"))
    middle = DeploymentFactory(name="middle", provider=catalogue, input_per_1m=Decimal("5"), output_per_1m=Decimal("8"))
    make_alias("routed", cheap, dear)
    return cheap, dear, middle


def test_the_default_baseline_is_the_aliases_dearest_deployment(routed, team):
    key = services.issue_api_key(team=team, name="k").secret

    with start_gateway() as gateway:
        call(gateway.url, key)

    (record,) = wait_for_usage(1)
    # 9 prompt + 12 completion tokens: $1/$2 per million actually, $10/$40 on the baseline.
    assert record.deployment == "cheap"
    assert record.cost_usd == Decimal("0.000033")
    assert record.baseline_cost_usd == Decimal("0.00057")


def test_a_chosen_baseline_deployment_replaces_the_default(routed, team):
    _, _, middle = routed
    ModelAlias.objects.filter(name="routed").update(baseline_deployment=middle)
    key = services.issue_api_key(team=team, name="k").secret

    with start_gateway() as gateway:
        call(gateway.url, key)

    (record,) = wait_for_usage(1)
    assert record.baseline_cost_usd == Decimal("0.000141")  # 9 × $5 + 12 × $8 per million
