"""RPM and TPM per key, team and subscription, with OpenAI's x-ratelimit-* headers on answers and refusals.
In-process windows on the embedded default; Redis in CI's second run (the cluster case is in
test_limits_cluster.py)."""

import time

import httpx
import pytest
from django.test import override_settings

from billing.ledger import admission
from portal import services
from portal.models import APIKey, Membership, Subscription, Team
from routing.models import ModelAlias
from tests.billing.ledger_helpers import CHAT, clear_ledger_in_redis, wait_for_a_fresh_minute_if_near_its_end
from tests.billing.tcp_proxy import CuttableProxy
from tests.gateway import start_gateway, wait_for_usage
from tests.portal.factories import MembershipFactory, ProductFactory, SubscriptionFactory, token_client
from tests.redis_server import IS_INSTALLED, RedisServer

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


@pytest.mark.skipif(not IS_INSTALLED, reason="needs redis-server to start a Redis of the test's own")
@pytest.mark.parametrize("redis_goes", ["unreachable", "down and comes back empty"])
def test_an_rpm_limit_counts_every_call_of_its_minute_while_redis_goes_away_and_comes_back(
    catalogue, team, caplog, monkeypatch, redis_goes
):
    monkeypatch.setattr(admission, "REDIS_RETRY_AFTER_S", 0.2)  # Redis is tried again every 0.2 s, not 5 s
    wait_for_a_fresh_minute_if_near_its_end(margin_s=20)  # the whole sequence inside one minute
    key = services.issue_api_key(team=team, name="limited", rpm_limit=9).secret
    own_redis = RedisServer().start()
    proxy = CuttableProxy("127.0.0.1", own_redis.port).start()
    try:
        with override_settings(REDIS_URL=f"redis://127.0.0.1:{proxy.port}/0"), start_gateway() as gateway:
            in_redis = [post(gateway.url, key) for _ in range(3)]
            if redis_goes == "unreachable":
                proxy.cut()  # Redis keeps its counts; the gateway cannot reach them
            else:
                own_redis.stop()
            in_the_database = [post(gateway.url, key) for _ in range(3)]
            if redis_goes == "unreachable":
                proxy = CuttableProxy("127.0.0.1", own_redis.port, port=proxy.port).start()
            else:
                own_redis.start()
            back_in_redis = []
            deadline = time.monotonic() + 10
            while not any("enforced in redis" in r.getMessage().lower() for r in caplog.records):
                assert time.monotonic() < deadline, "the ledger never went back to Redis"
                back_in_redis.append(post(gateway.url, key))
            back_in_redis.append(post(gateway.url, key))  # at least one call counted in Redis again
            while len(back_in_redis) < 12 and back_in_redis[-1].status_code == 200:
                back_in_redis.append(post(gateway.url, key))
    finally:
        proxy.stop()
        own_redis.stop()

    assert [a.status_code for a in in_redis + in_the_database] == [200] * 6
    # Three more fit in the minute, wherever they are counted (the way back to Redis may take a few calls);
    # then every store refuses.
    statuses = [a.status_code for a in back_in_redis]
    assert statuses[:3] == [200, 200, 200] and set(statuses[3:]) == {429}, statuses
    assert back_in_redis[-1].json()["error"]["code"] == "requests_per_minute_exceeded"
