"""Every write of a model the data plane reads records a change in the same transaction, whichever way it is
written; and the loader reads nothing else, so a model added to it without a change feed fails here."""

import re

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from billing.models import Budget
from portal.models import APIKey, Product, Subscription, Team, Tenant
from portal.prompts.models import PromptEnvironment, PromptPublication, PromptTemplate, PromptVersion
from routing.control_plane import feed, loader, refresher
from routing.models import AliasDeployment, ChangeEvent, Deployment, LearnedRouter, ModelAlias, Provider
from tests.factories import DeploymentFactory, ModelAliasFactory, ProviderFactory, TeamFactory, make_alias

pytestmark = pytest.mark.django_db(transaction=True)


def changes_after(version: int) -> list[tuple[str, int | None]]:
    return list(ChangeEvent.objects.filter(version__gt=version).order_by("version").values_list("kind", "object_id"))


def latest() -> int:
    return loader.latest_version()


@pytest.fixture
def world():
    team = TeamFactory()
    provider = ProviderFactory()
    deployment = DeploymentFactory(provider=provider)
    alias = make_alias("feed-alias", deployment)
    product = Product.objects.create(tenant=team.tenant, name="Chat", requires_approval=False)
    subscription = Subscription.objects.create(team=team, product=product, purpose="t", status="active")
    key = APIKey.objects.create(team=team, prefix="sk-tw-feed0001", secret_hash="a" * 64)
    budget = Budget.objects.create(tenant=team.tenant, scope="team", target_id=team.pk, period="monthly")
    prompt = PromptTemplate.objects.create(
        tenant=team.tenant, team=team, slug="feed", name="Feed", alias="feed-alias", messages=[]
    )
    prompt_version = PromptVersion.objects.create(
        template=prompt, number=1, alias="feed-alias", messages=[], variables={}, parameters={}, locked_parameters=[]
    )
    publication = PromptPublication.objects.create(
        template=prompt, environment="prod", split={"1": 100}, action="published"
    )
    return locals()


def test_every_data_plane_model_is_recorded_by_save_create_update_bulk_and_delete(world):
    rows = {
        Tenant: world["team"].tenant,
        Team: world["team"],
        APIKey: world["key"],
        Product: world["product"],
        Subscription: world["subscription"],
        Budget: world["budget"],
        Provider: world["provider"],
        Deployment: world["deployment"],
        ModelAlias: world["alias"],
        AliasDeployment: AliasDeployment.objects.get(alias=world["alias"]),
        LearnedRouter: LearnedRouter.objects.create(
            alias=world["alias"], version=1, weights=b"", examples=1, seed=12, file_sha256="0" * 64, size_bytes=0
        ),
        PromptTemplate: world["prompt"],
        PromptVersion: world["prompt_version"],
        PromptPublication: world["publication"],
        PromptEnvironment: PromptEnvironment.objects.create(tenant=world["team"].tenant, name="canary"),
    }
    # The registry is what the feed watches: a model added to the data plane must be added here too.
    assert set(feed.data_plane_models()) == set(rows)
    for model, row in rows.items():
        expected = (model.change_kind, row.pk if model.change_per_object else None)
        field = next(f for f in model._meta.concrete_fields if not f.primary_key)
        for write in ("save", "update", "bulk_update"):
            before = latest()
            if write == "save":
                row.save()
            elif write == "update":
                model.objects.filter(pk=row.pk).update(**{field.attname: getattr(row, field.attname)})
            else:
                model.objects.bulk_update([row], [field.name])
            assert changes_after(before) == [expected], f"{model.__name__}: {changes_after(before)}"
    before = latest()
    created = ModelAliasFactory()
    assert changes_after(before) == [("catalogue", None)]
    before = latest()
    ModelAlias.objects.bulk_create([ModelAlias(name="bulk-1"), ModelAlias(name="bulk-2")])
    Team.objects.bulk_create([Team(tenant=world["team"].tenant, name="B", slug="b")])
    assert [kind for kind, _ in changes_after(before)] == ["catalogue", "team"]
    before = latest()
    created.delete()
    ModelAlias.objects.filter(name__startswith="bulk-").delete()
    assert changes_after(before) == [("catalogue", None)] * 3


def test_deleting_a_team_records_its_keys_and_subscriptions_through_the_cascade(world):
    before = latest()
    expected = {
        ("budget", world["budget"].pk),
        ("key", world["key"].pk),
        ("team", world["team"].pk),
        ("subscription", world["subscription"].pk),
    }
    world["budget"].delete()
    world["team"].delete()
    assert expected <= set(changes_after(before))


def test_many_to_many_changes_are_recorded_on_either_side(world):
    key, subscription, product, alias = world["key"], world["subscription"], world["product"], world["alias"]
    steps = [
        (lambda: key.subscriptions.add(subscription), [("key", key.pk)]),
        (lambda: subscription.api_keys.remove(key), [("key", key.pk)]),
        (lambda: subscription.api_keys.add(key), [("key", key.pk)]),
        (lambda: subscription.api_keys.clear(), [("key", key.pk)]),
        (lambda: product.aliases.add(alias), [("product", product.pk)]),
        (lambda: alias.products.remove(product), [("product", product.pk)]),
        (lambda: product.aliases.set([alias]), [("product", product.pk)]),
    ]
    for step, expected in steps:
        before = latest()
        step()
        assert changes_after(before) == expected


def test_fields_the_data_plane_does_not_read_are_written_without_a_change(world):
    before = latest()
    APIKey.objects.filter(pk=world["key"].pk).update(last_used_at="2026-12-01T00:00:00Z")
    world["key"].save(update_fields=["last_used_at"])
    assert changes_after(before) == []


def test_a_write_that_rolls_back_takes_its_change_and_its_version_with_it(world):
    before = latest()
    with pytest.raises(RuntimeError), transaction.atomic():
        Team.objects.filter(pk=world["team"].pk).update(rpm_limit=5)
        raise RuntimeError
    assert (latest(), changes_after(before)) == (before, [])
    # Versions have no gaps, which is how a reader knows it missed nothing.
    world["team"].save()
    assert list(ChangeEvent.objects.filter(version__gt=before).values_list("version", flat=True)) == [before + 1]


def test_one_write_of_many_rows_records_one_change_for_the_whole_kind():
    tenant = TeamFactory().tenant
    Team.objects.bulk_create([Team(tenant=tenant, name=f"t{n}", slug=f"t{n}") for n in range(1001)])
    before = latest()
    Team.objects.filter(tenant=tenant).update(rpm_limit=10)
    assert changes_after(before) == [("team", None)]


def tables_read(fn, *args) -> set[str]:
    with CaptureQueriesContext(connection) as queries:
        fn(*args)
    return {
        table.strip('"')
        for query in queries.captured_queries
        for table in re.findall(r'(?:FROM|JOIN)\s+("?\w+"?)', query["sql"], flags=re.IGNORECASE)
    }


def test_the_loader_reads_only_models_whose_writes_are_recorded(world):
    watched = {"routing_changeevent", "routing_changecounter"}
    for model in feed.data_plane_models():
        watched.add(model._meta.db_table)
        watched |= {field.remote_field.through._meta.db_table for field in model._meta.many_to_many}
    world["key"].subscriptions.add(world["subscription"])
    world["key"].source = APIKey.Source.PORTAL
    world["key"].save()
    changes = loader.read_changes(0, limit=10_000).changes
    read = (
        tables_read(refresher._build)
        | tables_read(loader.principals_by_hash, ["a" * 64])
        | tables_read(loader.principals_by_id, [world["key"].pk])
        | tables_read(loader.resolve, changes)
    )
    assert read and read <= watched, f"read without a change feed: {read - watched}"
