import pytest

from portal import services
from tests.upstreams.faulty_server import FaultyUpstream
from tests.upstreams.server import LoopbackServer


@pytest.fixture
def faulty_upstream():
    """The programmable upstream (tests/upstreams/faulty_server.py), serving on a loopback port: `.url`, `.port`."""
    upstream = FaultyUpstream()
    with LoopbackServer(upstream) as server:
        upstream.url, upstream.port = server.url, server.port
        yield upstream


@pytest.fixture
def caller_key(team):
    """An API key of the `team` fixture's, allowed every alias."""
    return services.issue_api_key(team=team, name="caller").secret
