"""Providers' quotas per deployment (billing/ledger/deployment_quota.py): counted per minute in each process, and
summed across processes through Redis."""

import os
from decimal import Decimal

import pytest
import redis.asyncio as redis

from billing.ledger.deployment_quota import DeploymentQuota
from core.values import ModelPrice, Target

pytestmark = pytest.mark.anyio
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/13"


class Clock:
    def __init__(self) -> None:
        self.now = 60.0 * 1000

    def __call__(self) -> float:
        return self.now


def deployment(name: str = "limited", *, rpm: int | None = None, tpm: int | None = None) -> Target:
    return Target(
        deployment=name,
        provider="p",
        kind="openai",
        base_url="http://127.0.0.1:9",
        model="m",
        price=ModelPrice(Decimal(1), Decimal(1)),
        rpm_limit=rpm,
        tpm_limit=tpm,
    )


def test_a_deployment_is_over_its_rpm_after_that_many_attempts_this_minute_and_free_the_next():
    clock = Clock()
    quota = DeploymentQuota(clock=clock)
    target = deployment(rpm=3)
    for _ in range(3):
        assert quota.over(target) is None
        quota.count(target, 10)
    assert quota.over(target) == "rpm-limit"
    clock.now += 60
    assert quota.over(target) is None


def test_tokens_count_against_the_tpm():
    quota = DeploymentQuota(clock=Clock())
    target = deployment(tpm=100)
    quota.count(target, 60)
    assert quota.over(target) is None
    quota.count(target, 40)
    assert quota.over(target) == "tpm-limit"


def test_a_deployment_without_quotas_is_never_over_and_costs_nothing_to_count():
    quota = DeploymentQuota(clock=Clock())
    target = deployment()
    for _ in range(1000):
        quota.count(target, 10**6)
    assert quota.over(target) is None and quota._own == {}


def test_old_minutes_are_forgotten():
    clock = Clock()
    quota = DeploymentQuota(clock=clock)
    for _ in range(10):
        quota.count(deployment(rpm=5), 1)
        clock.now += 60
    assert len(quota._own) <= 2


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def redis_or_skip():
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        await client.ping()
    except (redis.ConnectionError, OSError):
        await client.aclose()
        pytest.skip("no Redis to share quotas through")
    return client


async def test_two_processes_share_a_deployments_quota_through_redis():
    client = await redis_or_skip()
    prefix = f"tollway:test-quota:{os.getpid()}"
    clock = Clock()
    first, second = DeploymentQuota(clock=clock), DeploymentQuota(clock=clock)
    target = deployment(rpm=4)
    try:
        second.watch({"limited"})
        first.count(target, 1)
        first.count(target, 1)
        second.count(target, 1)
        await first.sync_once(client, prefix)
        await second.sync_once(client, prefix)
        await first.sync_once(client, prefix)
        assert first.over(target) is None and second.over(target) is None  # 3 of 4 sent
        second.count(target, 1)
        await second.sync_once(client, prefix)
        await first.sync_once(client, prefix)
        assert first.over(target) == "rpm-limit"  # it sent 2; the other process the other 2
        assert second.over(target) == "rpm-limit"
    finally:
        keys = [key async for key in client.scan_iter(f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_counts_a_failed_sync_could_not_add_are_added_by_the_next():
    client = await redis_or_skip()
    prefix = f"tollway:test-quota-retry:{os.getpid()}"
    clock = Clock()
    sender, reader = DeploymentQuota(clock=clock), DeploymentQuota(clock=clock)
    target = deployment(rpm=2)
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        sender.count(target, 1)
        sender.count(target, 1)
        with pytest.raises((redis.ConnectionError, OSError)):
            await sender.sync_once(dead, prefix)
        await sender.sync_once(client, prefix)
        reader.watch({"limited"})
        await reader.sync_once(client, prefix)
        assert reader.over(target) == "rpm-limit"
    finally:
        await dead.aclose()
        keys = [key async for key in client.scan_iter(f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
