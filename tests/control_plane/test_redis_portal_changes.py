"""What a tenant admin changes through /api/v1 reaches both gateway processes within 1 s while Redis carries the
change notifications: a suspended subscription closes its model, a team's new RPM limit is the one enforced, a
new budget refuses calls. Each key has been served by both processes first (it is in their memory), and the
periodic read is 30 s apart, so only the notification can deliver the change in time."""

import time

import pytest
from django.db import connection

from portal import services
from portal.models import APIKey
from tests.control_plane.cluster import (
    LONG_REFRESH_S,
    NOTIFY_BOUND_S,
    admin_api,
    chat,
    figures,
    make_portal,
    ok,
    running_cluster,
    seconds_until,
    within,
)
from tests.redis_server import IS_INSTALLED

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql" or not IS_INSTALLED,
        reason="needs PostgreSQL and redis-server (for a Redis of the test's own)",
    ),
]


def served_by_both(urls: list[str], key: str) -> dict[str, object]:
    answers = {url: chat(url, key) for url in urls}
    assert {url: a.status_code for url, a in answers.items()} == dict.fromkeys(urls, 200)
    return {url: a.headers.get("x-ratelimit-limit-requests") for url, a in answers.items()}


def test_a_suspended_subscription_closes_its_model_on_both_processes_within_1_s(tmp_path, catalogue, team):
    portal = make_portal(team)
    key = services.issue_api_key(team=team, source=APIKey.Source.PORTAL).secret
    with running_cluster(tmp_path, refresh_s=LONG_REFRESH_S) as cluster:
        served_by_both(cluster.urls, key)
        with admin_api(cluster.api_url, portal.admin_token) as api:
            suspension = api.post(f"/subscriptions/{portal.subscription.pk}/suspend", json={"reason": "unpaid"})
            changed_at = time.monotonic()
        assert ok(suspension)["status"] == "suspended"
        seconds = seconds_until(cluster.urls, lambda url: chat(url, key).status_code == 403, since=changed_at)

    assert within(seconds, NOTIFY_BOUND_S), f"first 403 after the suspension returned: {figures(seconds)}"


def test_a_teams_new_rpm_limit_is_enforced_by_both_processes_within_1_s(tmp_path, catalogue, team):
    portal = make_portal(team)
    key = services.issue_api_key(team=team).secret
    with running_cluster(tmp_path, refresh_s=LONG_REFRESH_S) as cluster:
        assert served_by_both(cluster.urls, key) == dict.fromkeys(cluster.urls, None)  # no limit yet
        with admin_api(cluster.api_url, portal.admin_token) as api:
            changed = api.patch(f"/teams/{team.pk}", json={"rpm_limit": 5000})
            changed_at = time.monotonic()
        assert ok(changed)["rpm_limit"] == 5000
        seconds = seconds_until(
            cluster.urls,
            lambda url: chat(url, key).headers.get("x-ratelimit-limit-requests") == "5000",
            since=changed_at,
        )

    assert within(seconds, NOTIFY_BOUND_S), f"first call under the new limit after the change: {figures(seconds)}"


def test_a_new_budget_refuses_calls_on_both_processes_within_1_s(tmp_path, catalogue, team):
    portal = make_portal(team)
    # A TPM limit so the warm-up calls count tokens too: each process loads its tokenizer on the first call
    # that counts (about 1.3 s on this machine), which would otherwise land inside the measured second.
    key = services.issue_api_key(team=team, tpm_limit=10**9).secret
    budget = {"scope": "team", "target": team.pk, "period": "monthly", "limit_tokens": 1, "action": "block"}

    def is_refused(url: str) -> bool:
        answer = chat(url, key)
        return answer.status_code == 429 and answer.json()["error"]["code"] == "budget_exceeded"

    with running_cluster(tmp_path, refresh_s=LONG_REFRESH_S) as cluster:
        served_by_both(cluster.urls, key)
        with admin_api(cluster.api_url, portal.admin_token) as api:
            created = api.post("/budgets", json=budget)
            created_at = time.monotonic()
        ok(created, 201)
        seconds = seconds_until(cluster.urls, is_refused, since=created_at)

    # One token a month: any call's worst case is more than that.
    assert within(seconds, NOTIFY_BOUND_S), f"first refusal after the budget was created: {figures(seconds)}"
