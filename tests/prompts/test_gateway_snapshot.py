"""Prompts in a gateway process's snapshot: the served versions' frozen content and who may call them, reloaded
whole on a `prompt` change (never a rebuild of keys), a new subscription to a bundling product learned from
the feed, and unserved versions read on demand and kept."""

import pytest

from config import db_thread
from portal.models import Subscription
from portal.prompts import services
from portal.prompts.models import PromptVersion
from routing.control_plane import prompt_versions, refresher, snapshot
from tests.factories import ModelAliasFactory, TeamFactory
from tests.portal.factories import ProductFactory
from tests.prompts.gateway_prompts import new_version, published

pytestmark = [pytest.mark.anyio, pytest.mark.django_db(transaction=True)]


def db(fn):
    async def on_a_database_thread(*args, **kwargs):
        return await db_thread.run_in_db(fn, *args, lane="test", **kwargs)

    return on_a_database_thread


@pytest.fixture(autouse=True)
def close_database_threads():
    yield
    db_thread.shutdown()


@pytest.fixture
async def plane():
    control_plane = refresher.ControlPlane()
    refresher._keys = refresher._new_key_cache()
    await control_plane.rebuild()
    yield control_plane
    snapshot.install(snapshot.Snapshot())
    snapshot.install_prompts(snapshot.PromptCatalogue())


@db
def a_prompt_with_three_versions():
    ModelAliasFactory(name="gpt-4o-mini")
    team = TeamFactory()
    template, owner = published(team=team, parameters={"temperature": 0.1})
    new_version(template, owner, parameters={"temperature": 0.2})
    new_version(template, owner, parameters={"temperature": 0.3})
    services.publish_split(template, actor=owner, environment="staging", split={"1": 50, "2": 50})
    return template, owner


async def test_only_the_served_versions_are_loaded_with_their_frozen_content(plane):
    template, _owner = await a_prompt_with_three_versions()
    await plane.catch_up()

    prompt = snapshot.prompts().by_slug[(template.tenant_id, "ticker-summary")]
    assert prompt.splits == {"prod": {"1": 100}, "staging": {"1": 50, "2": 50}}
    assert set(prompt.versions) == {1, 2} and prompt.latest_version == 3
    assert prompt.versions[2].parameters == {"temperature": 0.2}
    assert prompt.versions[1].alias == "gpt-4o-mini"
    assert prompt.versions[1].specs["quarter"].values == ("Q1", "Q2", "Q3", "Q4")


async def test_a_publish_reloads_the_prompts_without_a_rebuild(plane):
    template, owner = await a_prompt_with_three_versions()
    await plane.catch_up()
    before = plane.rebuilds

    await db(services.publish)(template, actor=owner, environment="prod", version=3)
    await plane.catch_up()
    assert snapshot.prompts().by_slug[(template.tenant_id, "ticker-summary")].splits["prod"] == {"3": 100}
    await db(services.rollback)(template, actor=owner, environment="prod")
    await plane.catch_up()

    assert snapshot.prompts().by_slug[(template.tenant_id, "ticker-summary")].splits["prod"] == {"1": 100}
    assert plane.rebuilds == before


async def test_a_new_subscription_to_a_bundling_product_is_learned_from_the_feed(plane):
    template, _owner = await a_prompt_with_three_versions()
    product = await db(ProductFactory)(aliases=[])
    await db(template.products.add)(product)
    await plane.catch_up()
    assert snapshot.prompts().bundling_products == {product.pk}
    subscriber = await db(TeamFactory)()

    subscription = await db(Subscription.objects.create)(
        team=subscriber, product=product, purpose="t", status=Subscription.Status.ACTIVE
    )
    await plane.catch_up()

    assert snapshot.prompts().bundling_subscriptions == {subscription.pk: product.pk}
    assert snapshot.prompts().by_product[(product.pk, "ticker-summary")].template_id == template.pk


async def test_an_unserved_version_is_read_on_demand_and_kept_since_versions_never_change(plane):
    template, _owner = await a_prompt_with_three_versions()
    await plane.catch_up()
    prompt = snapshot.prompts().by_slug[(template.tenant_id, "ticker-summary")]

    first = await prompt_versions.version_of(prompt, 3)
    # Gone from the database (as no service ever does): the kept copy still answers, so it was not read again.
    await db(PromptVersion.objects.filter(template=template, number=3).delete)()
    again = await prompt_versions.version_of(prompt, 3)

    assert first is again and first.parameters == {"temperature": 0.3}
    assert await prompt_versions.version_of(prompt, 1) is prompt.versions[1]
    assert await prompt_versions.version_of(prompt, 4) is None  # past the latest: not looked for
