import pytest
import redis
from django.conf import settings

from portal import services
from routing.control_plane import feed
from tests.upstreams.faulty_server import FaultyUpstream
from tests.upstreams.server import LoopbackServer


@pytest.fixture
def fresh_engine_state(transactional_db):
    """No breaker, hold or latency left in the test's Redis by an earlier run: the test database has the same
    name every run, so a gateway started now would load them (as a restarted gateway should)."""
    if settings.REDIS_URL:
        client = redis.Redis.from_url(settings.REDIS_URL)
        try:
            keys = list(client.scan_iter(f"tollway:routing:{feed.deployment_id()}:*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


@pytest.fixture
def faulty_upstream(fresh_engine_state):
    """The programmable upstream (tests/upstreams/faulty_server.py), serving on a loopback port: `.url`, `.port`."""
    upstream = FaultyUpstream()
    with LoopbackServer(upstream) as server:
        upstream.url, upstream.port = server.url, server.port
        yield upstream


@pytest.fixture
def caller_key(team):
    """An API key of the `team` fixture's, allowed every alias."""
    return services.issue_api_key(team=team, name="caller").secret
