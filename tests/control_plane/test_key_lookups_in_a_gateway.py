"""Keys looked up on demand, in a running gateway: a new key answers on its first call; a lookup runs off the
event loop (calls of keys in memory go on while one is held); made-up keys cost the database at most the cap."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from portal import services
from portal.keys import generate_key
from routing.control_plane import loader
from tests.gateway import start_gateway


def call(url: str, key: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )


def test_a_key_created_after_start_answers_on_its_first_call(gateway, team):
    issued = services.issue_api_key(team=team, name="made by a CI pipeline")
    assert call(gateway.url, issued.secret).status_code == 200


def test_a_key_lookup_does_not_hold_up_calls_of_keys_in_memory(gateway, api_key, team, monkeypatch):
    assert call(gateway.url, api_key).status_code == 200  # now in memory
    started, release = threading.Event(), threading.Event()
    real_lookup = loader.principals_by_hash

    def held_lookup(secret_hashes):
        started.set()
        release.wait(30)
        return real_lookup(secret_hashes)

    monkeypatch.setattr(loader, "principals_by_hash", held_lookup)
    new_key = services.issue_api_key(team=team, name="new").secret
    with ThreadPoolExecutor(1) as pool:
        first_call = pool.submit(call, gateway.url, new_key)
        assert started.wait(10)
        # Answered while the lookup is still held on the control-plane thread: it is not on the event loop.
        assert [call(gateway.url, api_key).status_code for _ in range(10)] == [200] * 10
        assert not first_call.done()
        release.set()
        assert first_call.result().status_code == 200


def test_made_up_keys_cost_at_most_the_cap_and_keys_in_memory_are_unaffected(catalogue, api_key, settings, monkeypatch):
    settings.TOLLWAY_KEY_LOOKUPS_PER_S = 2
    lookups = []
    real_lookup = loader.principals_by_hash
    monkeypatch.setattr(loader, "principals_by_hash", lambda hashes: lookups.extend(hashes) or real_lookup(hashes))
    with start_gateway() as gateway:
        assert call(gateway.url, api_key).status_code == 200
        lookups.clear()
        # Well-formed keys (a valid checksum), so only the cap stands between them and the database.
        started = time.monotonic()
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda _: call(gateway.url, generate_key()), range(60)))
        elapsed = time.monotonic() - started
        statuses = [r.status_code for r in answers]
        throttled = [r for r in answers if r.status_code == 429]
        good = [call(gateway.url, api_key).status_code for _ in range(5)]
        looked_up = next(r for r in answers if r.status_code == 401)  # a made-up key the database was asked about
        same_again = call(gateway.url, looked_up.request.headers["authorization"][7:])

    assert set(statuses) <= {401, 429} and statuses.count(401) == len(lookups)
    # The cap exactly: 2 at once, then 2 a second while the calls ran.
    assert 2 <= len(lookups) <= 2 + 2 * elapsed, f"{len(lookups)} lookups for 60 made-up keys in {elapsed:.1f} s"
    assert throttled[0].json()["error"]["code"] == "key_lookups_throttled"
    assert throttled[0].headers["retry-after"] == "1"
    assert good == [200] * 5
    assert same_again.status_code == 401 and len(lookups) == statuses.count(401)  # remembered as unknown
