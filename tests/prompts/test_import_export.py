"""Prompts as code: export_prompts writes YAML, import_prompts makes the database say what it says; idempotent,
a changed text is a new version, errors come with their paths and nothing is written when there is one."""

import io

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from portal.models import AuditLogEntry
from portal.prompts import documents, services
from portal.prompts.models import PromptEnvironment, PromptPublication, PromptTemplate, PromptVersion
from tests.factories import ModelAliasFactory, TeamFactory
from tests.portal.factories import ProductFactory
from tests.prompts.factories import TICKER_MESSAGES, make_prompt

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    team = TeamFactory(slug="research", tenant__slug="acme")
    ModelAliasFactory(name="mini")
    template = make_prompt(team=team, alias="mini", description="Morning note")
    owner = template.created_by
    services.create_version(template, actor=owner, message="first")
    services.update_draft(
        template, actor=owner, messages=[TICKER_MESSAGES[0], {"role": "user", "content": "{{ticker}}"}]
    )
    services.create_version(template, actor=owner)
    services.publish(template, actor=owner, environment="prod", version=1)
    services.publish_split(template, actor=owner, environment="staging", split={"1": 90, "2": 10})
    return {"team": team, "template": template, "owner": owner}


def export(*args) -> str:
    out = io.StringIO()
    call_command("export_prompts", *args, stdout=out)
    return out.getvalue()


def import_text(tmp_path, text: str) -> str:
    path = tmp_path / "prompts.yaml"
    path.write_text(text, encoding="utf-8")
    out = io.StringIO()
    call_command("import_prompts", str(path), stdout=out, stderr=io.StringIO())
    return out.getvalue()


def import_failure(tmp_path, text: str) -> list[str]:
    path = tmp_path / "prompts.yaml"
    path.write_text(text, encoding="utf-8")
    err = io.StringIO()
    with pytest.raises(CommandError, match="nothing imported"):
        call_command("import_prompts", str(path), stdout=io.StringIO(), stderr=err)
    return err.getvalue().splitlines()


def state() -> tuple:
    return (
        list(PromptTemplate.objects.order_by("pk").values()),
        list(PromptVersion.objects.order_by("pk").values()),
        list(PromptPublication.objects.order_by("pk").values()),
        AuditLogEntry.objects.count(),
    )


def test_the_export_has_each_prompts_fields_latest_version_and_publications(world):
    document = yaml.safe_load(export())

    [entry] = document["prompts"]
    assert (entry["slug"], entry["tenant"], entry["team"]) == ("ticker-summary", "acme", "research")
    assert entry["description"] == "Morning note" and entry["alias"] == "mini"
    assert entry["version"] == 2 and entry["messages"][1] == {"role": "user", "content": "{{ticker}}"}
    assert entry["variables"] == {"ticker": {"type": "string", "required": True}}
    assert entry["publications"] == {"prod": 1, "staging": {"1": 90, "2": 10}}


def test_the_export_can_be_narrowed_to_a_team(world):
    other = TeamFactory(tenant=world["team"].tenant, slug="ops")
    make_prompt(team=other, alias="mini", slug="ops-prompt")

    assert [e["slug"] for e in yaml.safe_load(export("--team", "ops"))["prompts"]] == ["ops-prompt"]
    assert [e["slug"] for e in yaml.safe_load(export("--team", "acme/research"))["prompts"]] == ["ticker-summary"]
    with pytest.raises(CommandError, match="no team"):
        export("--team", "nope")


def test_reimporting_the_export_changes_nothing_and_writes_no_audit_entry(world, tmp_path):
    text = export()
    before = state()

    output = import_text(tmp_path, text)

    assert state() == before
    assert "0 created, 0 new versions, 0 updated, 0 publications changed, 1 unchanged" in output


def test_a_round_trip_into_an_empty_database_rebuilds_the_prompt(world, tmp_path):
    document = yaml.safe_load(export())
    PromptTemplate.objects.all().delete()
    document["prompts"][0]["publications"] = {"prod": "latest"}

    import_text(tmp_path, documents.dump(document))

    template = PromptTemplate.objects.get(slug="ticker-summary")
    assert template.description == "Morning note" and template.messages[1]["content"] == "{{ticker}}"
    assert [v.number for v in template.versions.all()] == [1]
    assert template.versions.get().author_label == "manage.py import_prompts"
    assert services.current_publication(template, "prod").split == {"1": 100}
    created = AuditLogEntry.objects.filter(action="prompt.created").latest("pk")
    assert created.actor is None and created.actor_label == "manage.py import_prompts"
    assert yaml.safe_load(export())["prompts"][0]["publications"] == {"prod": 1}


def test_a_changed_text_becomes_a_new_version_and_publications_follow_the_file(world, tmp_path):
    document = yaml.safe_load(export())
    entry = document["prompts"][0]
    entry["messages"][1]["content"] = "Summarise {{ticker}}, briefly."
    entry["publications"]["prod"] = 3

    output = import_text(tmp_path, documents.dump(document))

    template = world["template"]
    assert [v.number for v in template.versions.order_by("number")] == [1, 2, 3]
    assert template.versions.get(number=3).messages[1]["content"] == "Summarise {{ticker}}, briefly."
    assert services.current_publication(template, "prod").split == {"3": 100}
    assert services.current_publication(template, "staging").split == {"1": 90, "2": 10}  # as the file says
    assert "new version ticker-summary@3" in output and "published ticker-summary prod" in output
    # And the same file again changes nothing more.
    before = state()
    import_text(tmp_path, documents.dump(document))
    assert state() == before


def test_changed_fields_that_are_not_text_update_the_prompt_without_a_version(world, tmp_path):
    product = ProductFactory(tenant=world["team"].tenant, name="Research API")
    document = yaml.safe_load(export())
    document["prompts"][0].update(name="Renamed", is_shared=True, products=["Research API"])

    import_text(tmp_path, documents.dump(document))

    template = PromptTemplate.objects.get(pk=world["template"].pk)
    assert (template.name, template.is_shared) == ("Renamed", True)
    assert list(template.products.all()) == [product]
    assert template.versions.count() == 2


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"variables": {"ticker": {"type": "stock"}}}, "prompts[1].variables.ticker.type: type must be one of"),
        ({"messages": [{"role": "user", "content": "{{ ticker.upper }}"}]}, "prompts[1].messages[0].content: "),
        ({"alias": "nope"}, "prompts[1].alias: no alias named 'nope'"),
        ({"team": "ghosts"}, "prompts[1].team: no team 'ghosts'"),
        ({"tenant": "globex"}, "prompts[1].tenant: no tenant 'globex'"),
        ({"publications": {"qa": 1}}, "prompts[1].publications.qa: no environment 'qa'"),
        ({"publications": {"prod": 9}}, "prompts[1].publications.prod: ticker-summary has no version 9"),
        ({"publications": {"prod": {"1": 50, "2": 40}}}, "prompts[1].publications.prod: a split's percentages"),
        ({"products": ["Nope"]}, "prompts[1].products[0]: no product 'Nope'"),
        ({"colour": "red"}, "prompts[1].colour: unknown field"),
        ({"version": "two"}, "prompts[1].version: "),
        ({"slug": "new-one"}, "prompts[1].slug: 'new-one' is also at prompts[0]"),
    ],
)
def test_an_error_is_reported_with_its_path_and_nothing_is_written(world, tmp_path, change, problem):
    document = yaml.safe_load(export())
    first = {**document["prompts"][0], "slug": "new-one", "messages": [{"role": "user", "content": "changed"}]}
    first["variables"], first["publications"] = {}, {}
    document["prompts"] = [first, {**document["prompts"][0], **change}]
    before = state()

    problems = import_failure(tmp_path, documents.dump(document))

    assert any(line.startswith(problem) for line in problems), problems
    assert state() == before  # not even the valid first entry


def test_every_problem_of_the_file_is_reported_at_once(world, tmp_path):
    document = yaml.safe_load(export())
    entry = document["prompts"][0]
    document["prompts"] = [{**entry, "alias": "nope"}, "not a mapping", {**entry, "slug": "x", "team": "ghosts"}]

    problems = import_failure(tmp_path, documents.dump(document))

    assert [line.split(":")[0] for line in problems] == ["prompts[0].alias", "prompts[1]", "prompts[2].team"]


@pytest.mark.parametrize(
    "text",
    ["prompts: [", "- just a list", "prompts: {a: 1}", "other: 1", "a: &a [1]\nprompts: *a"],
)
def test_a_file_that_is_not_a_prompt_document_is_refused(world, tmp_path, text):
    before = state()

    problems = import_failure(tmp_path, text)

    assert problems and state() == before


def test_a_draft_never_frozen_stays_a_draft(tmp_path):
    team = TeamFactory(slug="research", tenant__slug="acme")
    ModelAliasFactory(name="mini")
    make_prompt(team=team, alias="mini", slug="draft-only")
    text = export()
    assert yaml.safe_load(text)["prompts"][0]["version"] is None
    before = state()

    import_text(tmp_path, text)

    assert state() == before and not PromptVersion.objects.exists()


def test_an_environment_the_tenant_added_is_exported_and_imported(world, tmp_path):
    services.add_environment(world["team"].tenant, actor=services.Operator("test"), name="canary")
    services.publish(world["template"], actor=world["owner"], environment="canary", version=2)
    text = export()
    assert yaml.safe_load(text)["prompts"][0]["publications"]["canary"] == 2
    PromptPublication.objects.filter(environment="canary").delete()

    import_text(tmp_path, text)

    assert services.current_publication(world["template"], "canary").split == {"2": 100}
    assert PromptEnvironment.objects.count() == 1


def test_multi_line_messages_are_written_as_blocks_and_read_back_equal(world, tmp_path):
    text = "Line one.\nLine two with {{ticker}}.\n"
    services.update_draft(world["template"], actor=world["owner"], messages=[{"role": "user", "content": text}])
    services.create_version(world["template"], actor=world["owner"])

    exported = export()

    assert "content: |" in exported
    assert yaml.safe_load(exported)["prompts"][0]["messages"][0]["content"] == text
    before = state()
    import_text(tmp_path, exported)
    assert state() == before
