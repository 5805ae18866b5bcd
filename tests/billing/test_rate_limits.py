"""RPM and TPM per key, team and subscription, with OpenAI's x-ratelimit-* headers on answers and refusals.
In-process windows on the embedded default; Redis in CI's second run (the cluster case is in
test_limits_cluster.py)."""

import httpx
import pytest

from portal import services
from portal.models import APIKey, Membership, Subscription, Team
from routing.models import ModelAlias
from tests.billing.ledger_helpers import CHAT, clear_ledger_in_redis, wait_for_a_fresh_minute_if_near_its_end
from tests.gateway import start_gateway, wait_for_usage
from tests.portal.factories import MembershipFactory, ProductFactory, SubscriptionFactory, token_client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_ledger():
    clear_ledger_in_redis()
    wait_for_a_fresh_minute_if_near_its_end()
    yield
    clear_ledger_in_redis()


def post(url: str, key: str, body=CHAT) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"})


def test_a_team_limit_counts_every_key_of_the_team(catalogue, team):
    Team.objects.filter(pk=team.pk).update(rpm_limit=3)
    first = services.issue_api_key(team=team, name="a").secret
    second = services.issue_api_key(team=team, name="b").secret

    with start_gateway() as gateway:
        answers = [post(gateway.url, key) for key in (first, second, first, second)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == ["2", "1", "0", "0"]
    assert answers[3].json()["error"]["message"] == "Requests-per-minute limit of 3 reached for this team."
    assert answers[0].headers["x-ratelimit-limit-requests"] == "3"
    assert answers[0].headers["x-ratelimit-reset-requests"].endswith("s")
    assert 1 <= int(answers[3].headers["retry-after"]) <= 61
    assert len(wait_for_usage(4)) == 4


def test_tokens_per_minute_reserve_the_worst_case_and_settle_to_the_real_count(catalogue, team):
    key = services.issue_api_key(team=team, name="t", tpm_limit=60).secret

    with start_gateway() as gateway:
        first = post(gateway.url, key)
        second = post(gateway.url, key)
        third = post(gateway.url, key)

    # Each call reserves 7 + 20 tokens and settles to 21: 21 + 27 fits in 60, 42 + 27 does not.
    assert [first.status_code, second.status_code, third.status_code] == [200, 200, 429]
    assert first.headers["x-ratelimit-limit-tokens"] == "60"
    assert first.headers["x-ratelimit-remaining-tokens"] == "33"  # 60 - 27 reserved
    assert third.json()["error"]["code"] == "tokens_per_minute_exceeded"


def test_a_key_limit_is_tighter_than_its_team_limit_and_the_headers_show_the_tighter(catalogue, team):
    Team.objects.filter(pk=team.pk).update(rpm_limit=100)
    key = services.issue_api_key(team=team, name="k", rpm_limit=2).secret

    with start_gateway() as gateway:
        answers = [post(gateway.url, key) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[0].headers["x-ratelimit-limit-requests"] == "2"
    assert answers[2].json()["error"]["message"] == "Requests-per-minute limit of 2 reached for this key."


def test_calls_without_limits_carry_no_rate_limit_headers(gateway, api_key):
    answer = post(gateway.url, api_key)

    assert answer.status_code == 200
    assert not [h for h in answer.headers if h.startswith("x-ratelimit")]


def test_team_and_subscription_limits_set_through_the_rest_api_reach_the_gateway(catalogue, team):
    admin = MembershipFactory(team=None, tenant=team.tenant, role=Membership.Role.TENANT_ADMIN).user
    product = ProductFactory(tenant=team.tenant, aliases=[ModelAlias.objects.get(name="gpt-4o-mini")])
    subscription = SubscriptionFactory(team=team, product=product, status=Subscription.Status.ACTIVE)
    portal_key = services.issue_api_key(
        team=team, name="portal", source=APIKey.Source.PORTAL, subscriptions=[subscription]
    ).secret
    operator_key = services.issue_api_key(team=team, name="operator").secret  # no subscription: team limit only
    client = token_client(admin)

    by_subscription = client.patch(f"/api/v1/subscriptions/{subscription.pk}", {"rpm_limit": 2}, format="json")
    by_team = client.patch(f"/api/v1/teams/{team.pk}/", {"rpm_limit": 4}, format="json")
    with start_gateway() as gateway:
        portal_answers = [post(gateway.url, portal_key) for _ in range(3)]
        operator_answers = [post(gateway.url, operator_key) for _ in range(3)]

    assert (by_subscription.status_code, by_subscription.json()["rpm_limit"]) == (200, 2)
    assert (by_team.status_code, by_team.json()["rpm_limit"]) == (200, 4)
    assert [a.status_code for a in portal_answers] == [200, 200, 429]
    assert (
        portal_answers[2].json()["error"]["message"] == "Requests-per-minute limit of 2 reached for this subscription."
    )
    # The team's 4 count the portal key's 2 answered calls (refusals reserve nothing), leaving 2.
    assert [a.status_code for a in operator_answers] == [200, 200, 429]
    assert operator_answers[2].json()["error"]["message"] == "Requests-per-minute limit of 4 reached for this team."
