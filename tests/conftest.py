import pytest

from portal import services
from tests.engine_state import clear_shared_engine_state
from tests.factories import DeploymentFactory, ProviderFactory, TeamFactory, make_alias
from tests.gateway import start_gateway
from tests.upstreams.openai_server import OpenAIUpstream
from tests.upstreams.server import LoopbackServer


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(autouse=True)
def no_engine_state_from_earlier_tests():
    """Every test's gateways start without the breakers and holds an earlier test left in Redis."""
    clear_shared_engine_state()


# The gateway fixtures below are shared by the proxy, portal and browser tests.


@pytest.fixture
def openai_upstream():
    upstream = OpenAIUpstream()
    with LoopbackServer(upstream) as server:
        upstream.url = server.url
        yield upstream


@pytest.fixture
def team(transactional_db):
    return TeamFactory(name="Checkout", tenant__name="Acme")


@pytest.fixture
def catalogue(transactional_db, openai_upstream):
    """gpt-4o-mini on the OpenAI test upstream, plus aliases that exercise fail-over and errors."""
    provider = ProviderFactory(name="openai-test", base_url=f"{openai_upstream.url}/v1")
    main = DeploymentFactory(name="main-gpt-4o-mini", provider=provider, model="gpt-4o-mini")
    broken = DeploymentFactory(name="broken-500", provider=provider, model="fail-500")
    make_alias("gpt-4o-mini", main)
    make_alias("failover", broken, main)
    make_alias("always-500", broken)
    make_alias("bad-request", DeploymentFactory(name="bad-request", provider=provider, model="bad-request"))
    make_alias("no-usage", DeploymentFactory(name="no-usage", provider=provider, model="no-usage"))
    make_alias("tools", DeploymentFactory(name="tools", provider=provider, model="tools"))
    make_alias("slow", DeploymentFactory(name="slow", provider=provider, model="slow"))
    make_alias("rate-limited", DeploymentFactory(name="rate-limit", provider=provider, model="rate-limit"))
    make_alias(
        "embed",
        DeploymentFactory(name="embed", provider=provider, model="text-embedding-3-small", capabilities=["embeddings"]),
    )
    return provider


@pytest.fixture
def api_key(team, catalogue):
    return services.issue_api_key(team=team, name="test key").secret


@pytest.fixture
def gateway(catalogue, api_key):
    with start_gateway() as server:
        yield server


@pytest.fixture
def tasks_inline():
    """Celery tasks run where they are sent, even with a broker configured (CI's PostgreSQL + Redis run has no
    worker): for tests of what is sent and what it does, not of how it is queued."""
    from config.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before
