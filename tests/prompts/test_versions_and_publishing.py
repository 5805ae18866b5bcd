"""Versions freeze the draft and never change; publishing, splitting and rolling back move one pointer per
environment and are audited."""

import pytest

from portal.errors import NotAllowed
from portal.models import AuditLogEntry, Membership
from portal.prompts import selectors, services
from portal.prompts.models import PromptPublication, PromptVersion
from tests.factories import ModelAliasFactory, TeamFactory
from tests.portal.factories import MembershipFactory
from tests.prompts.factories import make_prompt, team_owner

pytestmark = pytest.mark.django_db


def _edit_and_freeze(template, owner, text, message=""):
    messages = [dict(m) for m in template.messages]
    messages[1]["content"] = text
    services.update_draft(template, actor=owner, messages=messages)
    return services.create_version(template, actor=owner, message=message)


def test_versions_are_numbered_freeze_the_draft_and_carry_a_diff():
    template = make_prompt()
    owner = template.created_by
    first = services.create_version(template, actor=owner, message="first cut")
    assert (first.number, first.diff, first.message) == (1, "", "first cut")
    second = _edit_and_freeze(template, owner, "Summarise {{ticker}} for {{quarter}} in {{words}} short words.")
    assert second.number == 2
    assert "-Summarise {{ticker}} for {{quarter}} in {{words}} words." in second.diff
    assert "+Summarise {{ticker}} for {{quarter}} in {{words}} short words." in second.diff
    # The first version is untouched by the edit.
    first.refresh_from_db()
    assert first.messages[1]["content"].endswith("in {{words}} words.")
    # Editing the draft again changes no version.
    services.update_draft(template, actor=owner, name="Renamed")
    assert PromptVersion.objects.get(pk=second.pk).messages == second.messages


def test_freezing_an_unchanged_draft_is_refused():
    template = make_prompt()
    services.create_version(template, actor=template.created_by)
    with pytest.raises(services.PromptInvalid) as caught:
        services.create_version(template, actor=template.created_by)
    assert caught.value.param == "draft"


def test_new_text_keeps_the_specs_of_variables_it_still_uses():
    template = make_prompt()
    services.update_draft(
        template,
        actor=template.created_by,
        messages=[{"role": "user", "content": "Just {{quarter}} of {{ticker}}"}],
    )
    assert template.variables == {
        "quarter": {"type": "enum", "required": False, "default": "Q1", "values": ["Q1", "Q2", "Q3", "Q4"]},
        "ticker": {"type": "string", "required": True},
    }


def test_publish_split_and_rollback_move_one_current_row_and_are_audited():
    template = make_prompt()
    owner = template.created_by
    services.create_version(template, actor=owner)
    _edit_and_freeze(template, owner, "v2 {{ticker}} {{quarter}} {{words}}")
    _edit_and_freeze(template, owner, "v3 {{ticker}} {{quarter}} {{words}}")

    services.publish(template, actor=owner, environment="prod", version=1)
    services.publish(template, actor=owner, environment="prod", version=2)
    services.publish_split(template, actor=owner, environment="prod", split={"3": 10, "2": 90})
    services.publish(template, actor=owner, environment="staging", version=3)
    assert selectors.current_publications(template) == {"prod": {"2": 90, "3": 10}, "staging": {"3": 100}}

    services.rollback(template, actor=owner, environment="prod")
    assert selectors.current_publications(template)["prod"] == {"2": 100}
    services.rollback(template, actor=owner, environment="prod")
    assert selectors.current_publications(template)["prod"] == {"1": 100}
    with pytest.raises(services.PromptInvalid):
        services.rollback(template, actor=owner, environment="prod")  # nothing before version 1
    assert PromptPublication.objects.filter(template=template, environment="prod", is_current=True).count() == 1

    actions = list(
        AuditLogEntry.objects.filter(target_id=str(template.pk), action__startswith="prompt.")
        .order_by("pk")
        .values_list("action", flat=True)
    )
    assert actions == [
        "prompt.created",
        "prompt.version_created",
        "prompt.updated",
        "prompt.version_created",
        "prompt.updated",
        "prompt.version_created",
        "prompt.published",
        "prompt.published",
        "prompt.split",
        "prompt.published",
        "prompt.rolled_back",
        "prompt.rolled_back",
    ]
    split_entry = AuditLogEntry.objects.get(action="prompt.split")
    assert split_entry.details["before"] == {"2": 100}
    assert split_entry.details["split"] == {"2": 90, "3": 10}


@pytest.mark.parametrize(
    "split, param",
    [
        ({"1": 50, "2": 40}, "split"),  # not 100
        ({"1": 100, "2": 0}, "split.2"),
        ({"1": 50, "9": 50}, "split.9"),  # no version 9
        ({"1": 50.5, "2": 49.5}, "split.1"),
        ({"1": 40, "2": 30, "3": 30}, "split"),  # three versions
        ({"x": 100}, "split.x"),
        ([1, 2], "split"),
    ],
)
def test_bad_splits_are_refused(split, param):
    template = make_prompt()
    services.create_version(template, actor=template.created_by)
    _edit_and_freeze(template, template.created_by, "v2 {{ticker}} {{quarter}} {{words}}")
    with pytest.raises(services.PromptInvalid) as caught:
        services.publish_split(template, actor=template.created_by, environment="prod", split=split)
    assert caught.value.param == param


def test_environments_are_the_defaults_and_what_a_tenant_adds():
    template = make_prompt()
    services.create_version(template, actor=template.created_by)
    with pytest.raises(services.PromptInvalid) as caught:
        services.publish(template, actor=template.created_by, environment="canary", version=1)
    assert caught.value.param == "environment"
    admin = MembershipFactory(team=None, tenant=template.tenant, role=Membership.Role.TENANT_ADMIN).user
    with pytest.raises(NotAllowed):
        services.add_environment(template.tenant, actor=template.created_by, name="canary")
    services.add_environment(template.tenant, actor=admin, name="Canary")
    assert services.environments_of(template.tenant) == ["dev", "staging", "prod", "canary"]
    services.publish(template, actor=template.created_by, environment="canary", version=1)


def test_only_team_owners_and_tenant_admins_write():
    team = TeamFactory()
    template = make_prompt(team=team)
    member = MembershipFactory(team=team, tenant=team.tenant, role=Membership.Role.MEMBER).user
    other_owner = team_owner()
    admin = MembershipFactory(team=None, tenant=team.tenant, role=Membership.Role.TENANT_ADMIN).user
    for user in (member, other_owner):
        with pytest.raises(NotAllowed):
            services.update_draft(template, actor=user, name="x")
        with pytest.raises(NotAllowed):
            services.create_version(template, actor=user)
    version = services.create_version(template, actor=admin)
    for user in (member, other_owner):
        with pytest.raises(NotAllowed):
            services.publish(template, actor=user, environment="prod", version=version.number)
    services.publish(template, actor=admin, environment="prod", version=version.number)


def test_slugs_are_unique_per_tenant_and_aliases_must_exist():
    team = TeamFactory()
    make_prompt(team=team, slug="same")
    with pytest.raises(services.PromptInvalid) as caught:
        make_prompt(team=TeamFactory(tenant=team.tenant), slug="same")
    assert caught.value.param == "slug"
    make_prompt(slug="same")  # another tenant may use it
    with pytest.raises(services.PromptInvalid) as caught:
        make_prompt(alias="no-such-alias")
    assert caught.value.param == "alias"
    for bad in ("", "has space", "x" * 101, "ünï"):
        with pytest.raises(services.PromptInvalid):
            make_prompt(slug=bad)


@pytest.mark.parametrize(
    "fields, param",
    [
        ({"parameters": {"temperature": "hot"}}, "parameters.temperature"),
        ({"parameters": {"max_tokens": True}}, "parameters.max_tokens"),
        ({"parameters": {"api_key": "x"}}, "parameters.api_key"),
        ({"locked_parameters": ["nope"]}, "locked_parameters"),
        ({"output_schema": {"type": "thing"}}, "output_schema.type"),
        ({"output_schema": "object"}, "output_schema"),
        ({"messages": [{"role": "user", "content": "{{a.b}}"}]}, "messages[0].content"),
        ({"variables": {"ticker": {"type": "date"}}}, "variables.ticker.type"),
    ],
)
def test_bad_drafts_are_refused_naming_the_field(fields, param):
    with pytest.raises(services.PromptInvalid) as caught:
        make_prompt(**fields)
    assert caught.value.param == param


def test_visibility_own_team_shared_and_nothing_across_tenants():
    team = TeamFactory()
    own = make_prompt(team=team, slug="own")
    shared = make_prompt(team=team, slug="shared", is_shared=True)
    colleague_team = TeamFactory(tenant=team.tenant)
    colleague = MembershipFactory(team=colleague_team, tenant=team.tenant).user
    member = MembershipFactory(team=team, tenant=team.tenant).user
    stranger = team_owner()
    assert set(selectors.templates_visible_to(member)) == {own, shared}
    assert set(selectors.templates_visible_to(colleague)) == {shared}
    assert list(selectors.templates_visible_to(stranger)) == []
    ModelAliasFactory()  # unrelated catalogue rows change nothing
    assert selectors.can_edit(own.created_by, own) and not selectors.can_edit(member, own)
