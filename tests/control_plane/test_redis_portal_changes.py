"""What a tenant admin changes through /api/v1 reaches both gateway processes within 1 s while Redis carries the
change notifications: a suspended subscription closes its model, a team's new RPM limit is the one enforced, a
new budget refuses calls. Each key has been served by both processes first (it is in their memory), and the
periodic read is 30 s apart, so only the notification can deliver a change in time. One test and one pair of
processes for the three: each change is still measured and reported on its own."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from portal import services
from portal.models import APIKey
from tests.control_plane.cluster import (
    LONG_REFRESH_S,
    NOTIFY_BOUND_S,
    FirstSeen,
    admin_api,
    assert_within,
    chat,
    make_portal,
    ok,
    running_cluster,
)
from tests.factories import TeamFactory
from tests.redis_server import IS_INSTALLED

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not IS_INSTALLED,
        reason="needs redis-server (for a Redis of the test's own)",
    ),
]


def served_by_both(urls: list[str], key: str) -> dict[str, str | None]:
    """Each process answers the key (so it is in their memory); their x-ratelimit-limit-requests headers."""
    with ThreadPoolExecutor(len(urls)) as pool:  # at once: a first call may load the tokenizer (see below)
        answers = dict(zip(urls, pool.map(lambda url: chat(url, key), urls), strict=True))
    assert {url: a.status_code for url, a in answers.items()} == dict.fromkeys(urls, 200)
    return {url: a.headers.get("x-ratelimit-limit-requests") for url, a in answers.items()}


def test_a_suspension_a_teams_rpm_limit_and_a_new_budget_each_reach_both_processes_within_1_s(
    tmp_path, catalogue, team
):
    # Three teams of one tenant, one change each, so no change can be what another one's probe sees.
    portal = make_portal(team)
    limited_team, budgeted_team = TeamFactory(tenant=team.tenant), TeamFactory(tenant=team.tenant)
    portal_key = services.issue_api_key(team=team, source=APIKey.Source.PORTAL).secret
    limited_key = services.issue_api_key(team=limited_team).secret
    # A TPM limit so the warm-up calls count tokens: each process loads its tokenizer on the first call that
    # counts (about 1.3 s on this machine), which would otherwise land inside the measured second.
    budgeted_key = services.issue_api_key(team=budgeted_team, tpm_limit=10**9).secret
    # One token a month: any call's worst case is more than that.
    budget = {"scope": "team", "target": budgeted_team.pk, "period": "monthly", "limit_tokens": 1}

    def is_refused_by_the_budget(url: str) -> bool:
        answer = chat(url, budgeted_key)
        return answer.status_code == 429 and answer.json()["error"]["code"] == "budget_exceeded"

    with running_cluster(tmp_path, refresh_s=LONG_REFRESH_S) as cluster:
        served_by_both(cluster.urls, portal_key)
        no_limit_yet = served_by_both(cluster.urls, limited_key)
        served_by_both(cluster.urls, budgeted_key)
        with admin_api(cluster.api_url, portal.admin_token) as api:
            with FirstSeen(cluster.urls, lambda url: chat(url, portal_key).status_code == 403) as closed:
                suspended = ok(api.post(f"/subscriptions/{portal.subscription.pk}/suspend", json={"reason": "unpaid"}))
                changed_at = time.monotonic()
            after_suspension = closed.seconds_since(changed_at)

            new_limit = FirstSeen(
                cluster.urls, lambda url: chat(url, limited_key).headers.get("x-ratelimit-limit-requests") == "5000"
            )
            with new_limit:
                limited = ok(api.patch(f"/teams/{limited_team.pk}", json={"rpm_limit": 5000}))
                changed_at = time.monotonic()
            after_limit = new_limit.seconds_since(changed_at)

            with FirstSeen(cluster.urls, is_refused_by_the_budget) as refused:
                ok(api.post("/budgets", json=budget), 201)
                changed_at = time.monotonic()
            after_budget = refused.seconds_since(changed_at)

    assert (suspended["status"], limited["rpm_limit"]) == ("suspended", 5000)
    assert no_limit_yet == dict.fromkeys(cluster.urls, None)
    assert_within(
        NOTIFY_BOUND_S,
        {
            "first 403 after the suspension returned": after_suspension,
            "first call under the team's new RPM limit": after_limit,
            "first refusal after the budget was created": after_budget,
        },
    )
