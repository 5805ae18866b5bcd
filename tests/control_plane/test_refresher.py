"""One process applying the change feed: in order, only what changed, catching up without a notification, and
building afresh when it fell too far behind or the feed was pruned past it."""

import asyncio

import pytest

from billing.models import Budget
from config import db_thread
from portal import services
from portal.keys import display_prefix, hash_key
from portal.models import APIKey, Product, Subscription, Team
from routing.control_plane import feed, refresher, snapshot
from routing.models import ChangeEvent
from tests.factories import DeploymentFactory, ProviderFactory, TeamFactory, make_alias

pytestmark = [pytest.mark.anyio, pytest.mark.django_db(transaction=True)]


def db(fn):
    """The test's own writes, on a database thread of their own (closed after each test)."""

    async def on_a_database_thread(*args, **kwargs):
        return await db_thread.run_in_db(fn, *args, lane="test", **kwargs)

    return on_a_database_thread


async def present(secret: str, settings):
    return await refresher.keys().principal(
        display_prefix(secret), hash_key(secret, pepper=settings.TOLLWAY_KEY_PEPPER)
    )


@pytest.fixture(autouse=True)
def close_database_threads():
    yield
    db_thread.shutdown()  # their connections, so the test database can be dropped


@pytest.fixture
async def plane():
    control_plane = refresher.ControlPlane()
    refresher._keys = refresher._new_key_cache()
    await control_plane.rebuild()
    yield control_plane
    snapshot.install(snapshot.Snapshot())


@db
def world():
    team = TeamFactory()
    make_alias("chat", DeploymentFactory(provider=ProviderFactory()))
    product = Product.objects.create(tenant=team.tenant, name="Chat", requires_approval=False)
    product.aliases.set(list(product.aliases.model.objects.filter(name="chat")))
    subscription = Subscription.objects.create(team=team, product=product, purpose="t", status="active")
    issued = services.issue_api_key(team=team, name="portal", source=APIKey.Source.PORTAL)
    return team, subscription, issued


async def test_changes_are_applied_in_order_and_only_what_changed_is_read(plane, settings):
    team, _, _ = await world()
    await plane.catch_up()
    for rpm in (10, 20, 30):
        await db(Team.objects.filter(pk=team.pk).update)(rpm_limit=rpm)
    before = plane.rebuilds
    await plane.catch_up()
    assert snapshot.current().team_limits[team.pk].rpm == 30
    assert plane.version == await db(refresher.loader.latest_version)()
    assert plane.rebuilds == before  # applied, not rebuilt
    await db(Team.objects.filter(pk=team.pk).update)(rpm_limit=None)
    await plane.catch_up()
    assert team.pk not in snapshot.current().team_limits


async def test_a_missed_notification_is_caught_by_the_next_periodic_read(plane, settings):
    team, _, _ = await world()
    budget = await db(Budget.objects.create)(
        tenant_id=team.tenant_id, scope="team", target_id=team.pk, period="monthly", limit_usd="1"
    )
    # Nothing woke the process (no Redis here); its next read finds the budget anyway.
    assert budget.pk not in snapshot.current().budget_by_id
    await plane.catch_up()
    assert snapshot.current().budgets[("team", team.pk)][0].budget_id == budget.pk


async def test_a_key_in_memory_follows_revocation_and_suspension(plane, settings):
    team, subscription, issued = await world()
    await plane.catch_up()
    first = await present(issued.secret, settings)
    assert first.allowed_aliases == frozenset({"chat"}) and not first.is_revoked

    await db(Subscription.objects.filter(pk=subscription.pk).update)(status="suspended")
    await plane.catch_up()
    assert (await present(issued.secret, settings)).allowed_aliases == frozenset()

    await db(APIKey.objects.filter(pk=issued.api_key.pk).update)(is_revoked=True)
    await plane.catch_up()
    assert (await present(issued.secret, settings)).is_revoked


async def test_a_new_key_is_found_on_its_first_presentation_without_any_refresh(plane, settings):
    team, _, _ = await world()
    issued = await db(services.issue_api_key)(team=team, name="ci")
    found = await present(issued.secret, settings)
    assert found is not None and found.key_id == issued.api_key.pk


async def test_a_process_too_far_behind_builds_afresh_and_rereads_the_keys_in_memory(plane, settings):
    settings.TOLLWAY_CHANGES_MAX_BATCH = 3
    team, _, issued = await world()
    await plane.catch_up()
    assert not (await present(issued.secret, settings)).is_revoked
    for rpm in range(1, 6):
        await db(Team.objects.filter(pk=team.pk).update)(rpm_limit=rpm)
    await db(APIKey.objects.filter(pk=issued.api_key.pk).update)(is_revoked=True)
    before = plane.rebuilds
    await plane.catch_up()
    assert plane.rebuilds == before + 1
    assert snapshot.current().team_limits[team.pk].rpm == 5
    # Kept through the rebuild, as it is now: no caller of a busy process is sent to the lookup cap.
    assert refresher.keys().cached(display_prefix(issued.secret)).is_revoked


async def test_a_feed_pruned_past_the_process_makes_it_build_afresh(plane, settings):
    team, _, _ = await world()
    await plane.catch_up()
    await db(Team.objects.filter(pk=team.pk).update)(rpm_limit=7)
    await db(Team.objects.filter(pk=team.pk).update)(rpm_limit=8)
    oldest = await db(lambda: ChangeEvent.objects.order_by("version").filter(version__gt=plane.version).first())()
    await db(oldest.delete)()  # as prune() does to changes past the retention
    before = plane.rebuilds
    await plane.catch_up()
    assert plane.rebuilds == before + 1 and snapshot.current().team_limits[team.pk].rpm == 8


async def test_a_feed_that_restarted_below_the_process_makes_it_build_afresh(plane, settings):
    team, _, _ = await world()
    await plane.catch_up()
    plane.version += 1000  # as if the database were restored from an older dump
    before = plane.rebuilds
    await plane.catch_up()
    assert plane.rebuilds == before + 1
    assert plane.version == await db(refresher.loader.latest_version)()


async def test_prune_keeps_recent_changes_and_deletes_old_ones(settings):
    await world()
    count = await db(ChangeEvent.objects.count)()
    assert count and await db(feed.prune)(older_than_h=1) == 0
    assert await db(feed.prune)(older_than_h=-1) == count


async def test_a_starting_process_reads_ahead_the_keys_used_lately(settings):
    from datetime import UTC, datetime, timedelta

    team, _, issued = await world()
    recent = [await db(services.issue_api_key)(team=team, name=f"busy {n}") for n in range(3)]
    idle = await db(services.issue_api_key)(team=team, name="idle")
    now = datetime.now(UTC)
    for n, one in enumerate(recent):
        await db(APIKey.objects.filter(pk=one.api_key.pk).update)(last_used_at=now - timedelta(minutes=n))
    await db(APIKey.objects.filter(pk=idle.api_key.pk).update)(last_used_at=now - timedelta(days=3))
    control_plane = refresher.ControlPlane()
    await control_plane.start()
    try:
        for _ in range(200):
            if len(refresher.keys()) == 3:
                break
            await asyncio.sleep(0.05)
        assert refresher.keys().key_ids(every=True) == {one.api_key.pk for one in recent}
    finally:
        await control_plane.stop()
        snapshot.install(snapshot.Snapshot())
