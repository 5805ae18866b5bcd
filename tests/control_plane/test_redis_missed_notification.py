"""A notification that never comes does not lose the change. The writer here is manage.py given a Redis nobody
listens on, so it commits its change to the feed but cannot publish it, while both gateway processes listen on
the real one: a publish lost between commit and Redis, as a process killed after its commit would lose it.
The periodic read delivers the change; and the next change that is published brings the missed one with it,
since a process reads everything after the last version it applied."""

import time

import pytest

from portal import services
from tests.control_plane.cluster import (
    LONG_REFRESH_S,
    NOTIFY_BOUND_S,
    PERIODIC_BOUND_S,
    SHORT_REFRESH_S,
    FirstSeen,
    admin_api,
    assert_within,
    change_feed_of,
    make_portal,
    models_status,
    monotonic_at,
    ok,
    refuses,
    running_cluster,
    unused_redis_url,
)
from tests.redis_server import IS_INSTALLED

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not IS_INSTALLED,
        reason="needs redis-server (for a Redis of the test's own)",
    ),
]


def statuses(urls: list[str], key: str) -> dict[str, int]:
    return {url: models_status(url, key) for url in urls}


def test_an_unpublished_change_reaches_both_processes_by_the_periodic_read(tmp_path, catalogue, team):
    issued = services.issue_api_key(team=team, name="to revoke")
    with running_cluster(tmp_path, refresh_s=SHORT_REFRESH_S) as cluster:
        assert statuses(cluster.urls, issued.secret) == dict.fromkeys(cluster.urls, 200)
        with FirstSeen(cluster.urls, refuses(issued.secret)) as seen:
            cluster.manage("revoke_api_key", issued.api_key.prefix, redis_url=unused_redis_url())
        # From the revocation's own timestamp, just before its commit: manage.py takes up to a second or two to
        # exit after it, and the periodic read does not wait for that.
        issued.api_key.refresh_from_db()
        seconds = seen.seconds_since(monotonic_at(issued.api_key.revoked_at))
        modes = {url: change_feed_of(url)["detail"]["mode"] for url in cluster.urls}

    assert modes == dict.fromkeys(cluster.urls, "notify")  # Redis was there all along: only this publish was lost
    assert_within(PERIODIC_BOUND_S, {"first 401 after the unpublished revocation was written": seconds})


def test_the_next_published_change_brings_a_missed_one_with_it_to_both_processes(tmp_path, catalogue, team):
    admin_token = make_portal(team).admin_token
    missed = services.issue_api_key(team=team, name="revoked unannounced")
    announced = services.issue_api_key(team=team, name="revoked announced")
    with running_cluster(tmp_path, refresh_s=LONG_REFRESH_S) as cluster:
        for key in (missed, announced):
            assert statuses(cluster.urls, key.secret) == dict.fromkeys(cluster.urls, 200)
        cluster.manage("revoke_api_key", missed.api_key.prefix, redis_url=unused_redis_url())
        # Nothing told the processes: they still let the key in (the next periodic read is 30 s away).
        before_the_next_change = statuses(cluster.urls, missed.secret)
        is_missed_refused, is_announced_refused = refuses(missed.secret), refuses(announced.secret)
        both_refused = FirstSeen(cluster.urls, lambda url: is_missed_refused(url) and is_announced_refused(url))
        with admin_api(cluster.api_url, admin_token) as api, both_refused:
            ok(api.post(f"/keys/{announced.api_key.pk}/revoke"))
            revoked_at = time.monotonic()
        seconds = both_refused.seconds_since(revoked_at)

    assert before_the_next_change == dict.fromkeys(cluster.urls, 200)
    assert_within(NOTIFY_BOUND_S, {"first 401 for both keys after the announced revoke returned": seconds})
