"""The control plane's snapshot carries how each alias routes (Snapshot.policies, parsed from the catalogue's
stored `routing:`) and each deployment's routing facts on its Targets; a change made through the catalogue
service reaches a running process like any catalogue change."""

import asyncio
import logging

import pytest

from config import db_thread
from core.values import BanditPolicy, BreakerPolicy, ExperimentPolicy, RetryPolicy, RoutingPolicy
from routing import services
from routing.catalogue import import_catalogue
from routing.control_plane import refresher, snapshot
from routing.models import Deployment, ModelAlias
from tests.catalogue.documents import platform, routing_catalogue  # noqa: F401 -- a fixture
from tests.portal.factories import UserFactory

pytestmark = [pytest.mark.anyio, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("platform")]


def db(fn):
    """The test's own writes, on a database thread of their own (closed after each test)."""

    async def on_a_database_thread(*args, **kwargs):
        return await db_thread.run_in_db(fn, *args, lane="test", **kwargs)

    return on_a_database_thread


@pytest.fixture(autouse=True)
def close_database_threads():
    yield
    db_thread.shutdown()  # their connections, so the test database can be dropped


@pytest.fixture
async def plane():
    await db(import_catalogue)(data=routing_catalogue())
    control_plane = refresher.ControlPlane()
    refresher._keys = refresher._new_key_cache()
    await control_plane.rebuild()
    yield control_plane
    snapshot.install(snapshot.Snapshot())


@db
def change_alias(name: str, **changes):
    alias = ModelAlias.objects.get(name=name)
    services.update_alias(alias=alias, changes=changes, updated_by=UserFactory(is_superuser=True))


@db
def change_deployment(name: str, **changes):
    deployment = Deployment.objects.select_related("provider").get(name=name)
    services.update_deployment(deployment=deployment, changes=changes, updated_by=UserFactory(is_superuser=True))


def target(alias: str, deployment: str):
    (found,) = [t for t in snapshot.current().aliases[alias] if t.deployment == deployment]
    return found


async def test_the_snapshot_holds_the_policy_of_each_alias_with_routing_and_none_for_the_others(plane):
    policies = snapshot.current().policies

    assert set(policies) == {"smart"}  # claude-sonnet routes by priority: the engine's default
    assert policies["smart"] == RoutingPolicy(
        strategy="cheapest",
        min_quality=0.7,
        weights=(("cheap-llama", 3.0), ("premium-gpt4", 1.0)),
        fallbacks=("claude-sonnet",),
        retry=RetryPolicy(max_attempts=3, base_delay_ms=50, max_delay_ms=1000, deadline_ms=20000),
        breaker=BreakerPolicy(
            consecutive_failures=3, error_rate=0.25, window_s=60.0, cooldown_s=10.0, half_open_probes=2, min_calls=20
        ),
        experiment=ExperimentPolicy(name="llama-vs-mixtral", arms=(("cheap-llama", 90), ("mid-mixtral", 10))),
        bandit=BanditPolicy(quality_weight=1.0, cost_weight=0.3, latency_weight=0.0, exploration=0.1),
    )


async def test_every_target_carries_its_deployments_routing_facts(plane):
    llama, gpt4 = target("smart", "cheap-llama"), target("smart", "premium-gpt4")

    assert (llama.context_window, llama.capabilities) == (8192, frozenset({"chat"}))
    assert (llama.quality, llama.region, llama.tags) == (0.72, "eu", frozenset({"zero-retention"}))
    assert (llama.rpm_limit, llama.tpm_limit) == (600, 200000)
    assert (gpt4.quality, gpt4.region, gpt4.tags) == (0.95, "", frozenset({"zero-retention", "soc2"}))
    assert (gpt4.context_window, gpt4.capabilities, gpt4.rpm_limit, gpt4.tpm_limit) == (
        None,
        frozenset(),
        None,
        2000000,
    )
    assert target("claude-sonnet", "premium-gpt4") == gpt4


async def test_a_change_through_the_catalogue_service_is_applied_without_a_rebuild(plane):
    await change_alias("claude-sonnet", routing={"strategy": "lowest-latency", "fallbacks": ["smart"]})
    await change_alias("smart", routing=None)
    await change_deployment("cheap-llama", quality=0.5, region="us", tags=[], rpm_limit=None)
    before = plane.rebuilds

    await plane.catch_up()

    assert plane.rebuilds == before
    assert snapshot.current().policies == {
        "claude-sonnet": RoutingPolicy(strategy="lowest-latency", fallbacks=("smart",))
    }
    llama = target("smart", "cheap-llama")
    assert (llama.quality, llama.region, llama.tags, llama.rpm_limit) == (0.5, "us", frozenset(), None)


async def test_a_weight_on_a_disabled_deployment_is_kept(plane):
    await change_deployment("premium-gpt4", is_enabled=False)

    await plane.catch_up()

    assert [t.deployment for t in snapshot.current().aliases["smart"]] == ["cheap-llama", "mid-mixtral"]
    assert snapshot.current().policies["smart"].weights == (("cheap-llama", 3.0), ("premium-gpt4", 1.0))


async def test_routing_left_naming_a_deployment_removed_in_the_admin_still_applies_and_says_so(plane, caplog):
    await db(lambda: ModelAlias.objects.get(name="smart").routes.filter(deployment__name="cheap-llama").delete())()

    with caplog.at_level(logging.WARNING, logger="routing.control_plane.loader"):
        await plane.catch_up()

    policy = snapshot.current().policies["smart"]
    assert (policy.strategy, policy.weights) == ("cheapest", (("premium-gpt4", 1.0),))
    assert "alias smart: its routing is not all valid (routing.weights.cheap-llama: is not one of" in caplog.text


async def test_a_running_control_plane_applies_a_routing_change_made_in_the_catalogue(settings):
    # Without Redis the periodic read finds it; with Redis the publish wakes the process first.
    settings.TOLLWAY_SNAPSHOT_REFRESH_S = 0.05
    settings.TOLLWAY_KEY_WARM_START_H = 0
    await db(import_catalogue)(data=routing_catalogue())
    control_plane = refresher.ControlPlane()
    await control_plane.start()
    try:
        assert snapshot.current().policies["smart"].strategy == "cheapest"
        await change_alias("smart", routing={"strategy": "round-robin"})
        for _ in range(200):
            if snapshot.current().policies["smart"].strategy == "round-robin":
                break
            await asyncio.sleep(0.05)
        assert snapshot.current().policies["smart"] == RoutingPolicy(strategy="round-robin")
    finally:
        await control_plane.stop()
        snapshot.install(snapshot.Snapshot())
