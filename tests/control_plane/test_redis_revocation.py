"""A key revoked through the REST API or manage.py is refused by both gateway processes within 1 s of the revoke
returning, while Redis carries the change notifications. The key is warm (both processes have served it, so it
is in their memory) and the periodic read is 30 s apart, so only the notification can deliver the revocation
in time."""

import time

import pytest
from django.db import connection

from portal import services
from tests.control_plane.cluster import (
    LONG_REFRESH_S,
    NOTIFY_BOUND_S,
    admin_api,
    figures,
    make_portal,
    models_status,
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


def warm(urls: list[str], key: str) -> None:
    assert {url: models_status(url, key) for url in urls} == dict.fromkeys(urls, 200)


def test_a_key_revoked_through_the_api_is_refused_by_both_processes_within_1_s(tmp_path, catalogue, team):
    issued = services.issue_api_key(team=team, name="to revoke")
    admin_token = make_portal(team).admin_token
    with running_cluster(tmp_path, refresh_s=LONG_REFRESH_S) as cluster:
        warm(cluster.urls, issued.secret)
        with admin_api(cluster.api_url, admin_token) as api:
            ok(api.post(f"/keys/{issued.api_key.pk}/revoke", json={"reason": "leaked"}))
            revoked_at = time.monotonic()
        seconds = seconds_until(cluster.urls, lambda url: models_status(url, issued.secret) == 401, since=revoked_at)

    assert within(seconds, NOTIFY_BOUND_S), f"first 401 after the revoke returned: {figures(seconds)}"


def test_a_key_revoked_with_manage_py_is_refused_by_both_processes_within_1_s(tmp_path, catalogue, team):
    issued = services.issue_api_key(team=team, name="to revoke")
    with running_cluster(tmp_path, refresh_s=LONG_REFRESH_S) as cluster:
        warm(cluster.urls, issued.secret)
        cluster.manage("revoke_api_key", issued.api_key.prefix)
        revoked_at = time.monotonic()
        seconds = seconds_until(cluster.urls, lambda url: models_status(url, issued.secret) == 401, since=revoked_at)

    assert within(seconds, NOTIFY_BOUND_S), f"first 401 after manage.py returned: {figures(seconds)}"
