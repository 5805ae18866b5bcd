"""A new key works on its first call on every gateway process, whatever the change feed says: a key a process
has not seen is looked up by its hash. Two processes with no Redis and a 30 s refresh, so neither a notification
nor the periodic read can be what lets the key in; the call comes straight after the key is made."""

from collections import Counter

import pytest

from tests.control_plane.cluster import LONG_REFRESH_S, admin_api, chat, make_portal, metric, ok, running_cluster

pytestmark = [
    pytest.mark.django_db(transaction=True),
]

CALLS_PER_PROCESS = 10  # per key: 20 calls over the two processes, each on a fresh connection


def test_a_key_made_through_the_api_or_manage_py_answers_its_first_call_on_both_processes(tmp_path, catalogue, team):
    portal = make_portal(team)
    with running_cluster(tmp_path, refresh_s=LONG_REFRESH_S, has_redis=False) as cluster:
        with admin_api(cluster.api_url, portal.admin_token) as api:
            by_api = ok(api.post("/keys", json={"team": team.pk, "name": "made in the api"}), 201)["secret"]
        # The process that did not serve the API call first: it can have learnt of the key only by asking.
        first_by_api = {url: chat(url, by_api).status_code for url in reversed(cluster.urls)}
        by_command = cluster.manage("create_api_key", "--team", team.slug, "--tenant", team.tenant.slug)
        first_by_command = {url: chat(url, by_command).status_code for url in cluster.urls}
        later = {
            name: Counter(chat(url, key).status_code for url in cluster.urls for _ in range(CALLS_PER_PROCESS))
            for name, key in (("api", by_api), ("manage.py", by_command))
        }
        # Each process looked each key up once, on its first call, and answered the rest from memory.
        lookups = {url: metric(url, 'tollway_key_lookups_total{result="found"}') for url in cluster.urls}
        in_memory = {url: metric(url, "tollway_key_cache_size") for url in cluster.urls}

    assert first_by_api == dict.fromkeys(cluster.urls, 200)
    assert first_by_command == dict.fromkeys(cluster.urls, 200)
    assert later == {name: Counter({200: 2 * CALLS_PER_PROCESS}) for name in ("api", "manage.py")}
    assert lookups == dict.fromkeys(cluster.urls, 2) and in_memory == dict.fromkeys(cluster.urls, 2)
