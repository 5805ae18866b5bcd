"""A key revoked through the REST API or manage.py is refused by both gateway processes within 1 s of the revoke
returning, while Redis carries the change notifications. The key is warm (both processes have served it, so it
is in their memory) and the periodic read is 30 s apart, so only the notification can deliver the revocation
in time."""

import time

import pytest
from django.db.models import Max

from portal import services
from routing.models import ChangeEvent
from tests.control_plane.cluster import (
    LONG_REFRESH_S,
    NOTIFY_BOUND_S,
    FirstSeen,
    admin_api,
    assert_within,
    change_feed_of,
    figures,
    make_portal,
    metric,
    models_status,
    monotonic_at,
    ok,
    refuses,
    running_cluster,
)
from tests.redis_server import IS_INSTALLED

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not IS_INSTALLED,
        reason="needs redis-server (for a Redis of the test's own)",
    ),
]


def warm(urls: list[str], key: str) -> None:
    assert {url: models_status(url, key) for url in urls} == dict.fromkeys(urls, 200)


def test_a_key_revoked_through_the_api_or_manage_py_is_refused_by_both_processes_within_1_s(tmp_path, catalogue, team):
    admin_token = make_portal(team).admin_token
    by_api = services.issue_api_key(team=team, name="revoked through the api")
    by_command = services.issue_api_key(team=team, name="revoked with manage.py")
    with running_cluster(tmp_path, refresh_s=LONG_REFRESH_S) as cluster:
        warm(cluster.urls, by_api.secret)
        warm(cluster.urls, by_command.secret)

        with admin_api(cluster.api_url, admin_token) as api, FirstSeen(cluster.urls, refuses(by_api.secret)) as seen:
            ok(api.post(f"/keys/{by_api.api_key.pk}/revoke", json={"reason": "leaked"}))
            revoked_at = time.monotonic()
        after_api = seen.seconds_since(revoked_at)
        other_key = {url: models_status(url, by_command.secret) for url in cluster.urls}
        with FirstSeen(cluster.urls, refuses(by_command.secret)) as seen:
            cluster.manage("revoke_api_key", by_command.api_key.prefix)
            revoked_at = time.monotonic()
        after_command = seen.seconds_since(revoked_at)
        # manage.py takes a while to exit after its commit, so the processes usually refuse the key before it
        # has returned (a negative figure). From the revocation's own timestamp, just before the commit, the
        # figure includes its publish, which imports and connects to Redis only then: shown, not bounded.
        by_command.api_key.refresh_from_db()
        since_written = seen.seconds_since(monotonic_at(by_command.api_key.revoked_at))
        print(f"first 401 after manage.py's revoked_at: {figures(since_written)}")
        # What each process says it has applied: the feed's latest version, in /readyz and /metrics alike.
        versions = {url: change_feed_of(url)["detail"]["version"] for url in cluster.urls}
        gauges = {url: metric(url, "tollway_change_feed_version") for url in cluster.urls}
    latest = ChangeEvent.objects.aggregate(latest=Max("version"))["latest"]

    assert other_key == dict.fromkeys(cluster.urls, 200)  # a revocation reaches its own key only
    assert versions == dict.fromkeys(cluster.urls, latest) and gauges == dict.fromkeys(cluster.urls, latest)
    assert_within(
        NOTIFY_BOUND_S,
        {"first 401 after the api's revoke returned": after_api, "after manage.py returned": after_command},
    )
