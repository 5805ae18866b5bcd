"""Without REDIS_URL there are no notifications: each gateway process reads the change feed every
TOLLWAY_SNAPSHOT_REFRESH_S, so a change reaches both within one interval and one read, and /readyz reports the
periodic mode as healthy (nothing is missing: this is how the gateway is configured)."""

import time

import pytest

from portal import services
from tests.control_plane.cluster import (
    PERIODIC_BOUND_S,
    SHORT_REFRESH_S,
    FirstSeen,
    admin_api,
    assert_within,
    change_feed_of,
    make_portal,
    models_status,
    ok,
    readiness,
    refuses,
    running_cluster,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
]


def test_without_redis_a_revocation_reaches_both_processes_within_the_refresh_interval(tmp_path, catalogue, team):
    admin_token = make_portal(team).admin_token
    issued = services.issue_api_key(team=team, name="to revoke")
    with running_cluster(tmp_path, refresh_s=SHORT_REFRESH_S, has_redis=False) as cluster:
        feeds = {url: change_feed_of(url) for url in cluster.urls}
        ready = {url: readiness(url) for url in cluster.urls}
        assert {url: models_status(url, issued.secret) for url in cluster.urls} == dict.fromkeys(cluster.urls, 200)
        with admin_api(cluster.api_url, admin_token) as api, FirstSeen(cluster.urls, refuses(issued.secret)) as seen:
            ok(api.post(f"/keys/{issued.api_key.pk}/revoke"))
            revoked_at = time.monotonic()
        seconds = seen.seconds_since(revoked_at)

    for url in cluster.urls:
        assert feeds[url]["ok"] is True and feeds[url]["detail"]["mode"] == "periodic", feeds[url]
        status, body = ready[url]
        assert status == 200 and "change_feed" not in body["degraded"], body
    assert_within(PERIODIC_BOUND_S, {"first 401 after the revoke returned": seconds})
