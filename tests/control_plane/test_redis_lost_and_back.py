"""Redis (REDIS_URL, a redis-server of the test's own) goes away under two gateway processes and comes back.
While it is away, /readyz degrades on change_feed (mode "periodic", HTTP 200: the gateway still serves) and
changes still arrive by the periodic read; once it is back, both processes say "notify" again and a change
reaches them within 1 s once more."""

import time

import pytest

from portal import services
from tests.control_plane.cluster import (
    LONG_REFRESH_S,
    NOTIFY_BOUND_S,
    PERIODIC_BOUND_S,
    SHORT_REFRESH_S,
    Cluster,
    FirstSeen,
    admin_api,
    assert_within,
    change_feed_of,
    figures,
    make_portal,
    models_status,
    ok,
    readiness,
    refuses,
    running_cluster,
)
from tests.redis_server import IS_INSTALLED

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not IS_INSTALLED,
        reason="needs redis-server (for a Redis the test can kill)",
    ),
]

# Noticing a lost Redis is immediate (its socket closes), but reconnecting backs off, up to 10 s between tries.
RECONNECT_WITHIN_S = 15.0


def wait_for_mode(cluster: Cluster, mode: str, *, timeout_s: float = RECONNECT_WITHIN_S) -> None:
    def is_in_mode(url: str) -> bool:
        feed = change_feed_of(url)
        return feed["detail"]["mode"] == mode and feed["ok"] is (mode == "notify")

    with FirstSeen(cluster.urls, is_in_mode, timeout_s=timeout_s) as seen:
        began = time.monotonic()
    seconds = seen.seconds_since(began)
    print(f"change_feed in mode {mode!r} after {figures(seconds)}")
    assert all(s is not None for s in seconds.values()), f"change_feed in mode {mode!r}: {figures(seconds)}"


def test_with_redis_lost_readiness_degrades_to_periodic_and_changes_still_arrive_until_it_returns(
    tmp_path, catalogue, team
):
    admin_token = make_portal(team).admin_token
    issued = services.issue_api_key(team=team, name="to revoke")
    with running_cluster(tmp_path, refresh_s=SHORT_REFRESH_S) as cluster:
        wait_for_mode(cluster, "notify")
        assert {url: models_status(url, issued.secret) for url in cluster.urls} == dict.fromkeys(cluster.urls, 200)

        cluster.redis.stop()
        wait_for_mode(cluster, "periodic")
        while_lost = {url: readiness(url) for url in cluster.urls}
        with admin_api(cluster.api_url, admin_token) as api, FirstSeen(cluster.urls, refuses(issued.secret)) as seen:
            ok(api.post(f"/keys/{issued.api_key.pk}/revoke"))  # its publish fails: nobody is listening anyway
            revoked_at = time.monotonic()
        seconds = seen.seconds_since(revoked_at)

        cluster.redis.start()  # on the same port, as a restarted Redis
        wait_for_mode(cluster, "notify")
        after_return = {url: readiness(url) for url in cluster.urls}

    for url in cluster.urls:
        status, body = while_lost[url]
        assert (status, body["status"]) == (200, "degraded"), body
        assert "change_feed" in body["degraded"], body
        feed = body["checks"]["change_feed"]
        assert feed["ok"] is False and feed["detail"]["mode"] == "periodic", feed
        status, body = after_return[url]
        assert status == 200 and "change_feed" not in body["degraded"], body
        assert body["checks"]["change_feed"]["detail"]["mode"] == "notify", body
    assert_within(PERIODIC_BOUND_S, {"first 401 after the revoke returned, Redis away": seconds})


def test_once_redis_returns_a_change_reaches_both_processes_within_1_s_again(tmp_path, catalogue, team):
    issued = services.issue_api_key(team=team, name="to revoke")
    with running_cluster(tmp_path, refresh_s=LONG_REFRESH_S) as cluster:
        wait_for_mode(cluster, "notify")
        assert {url: models_status(url, issued.secret) for url in cluster.urls} == dict.fromkeys(cluster.urls, 200)
        cluster.redis.stop()
        wait_for_mode(cluster, "periodic")
        cluster.redis.start()
        wait_for_mode(cluster, "notify")

        with FirstSeen(cluster.urls, refuses(issued.secret)) as seen:
            cluster.manage("revoke_api_key", issued.api_key.prefix)
            revoked_at = time.monotonic()
        seconds = seen.seconds_since(revoked_at)

    assert_within(NOTIFY_BOUND_S, {"first 401 after manage.py returned": seconds})
