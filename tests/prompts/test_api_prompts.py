"""A prompt's life through /api/v1/prompts: created as a draft, changed, frozen as versions, published, split,
rolled back and rendered, each answer in the shape the issue gives."""

import pytest

from portal.models import AuditLogEntry, Membership
from portal.prompts.models import PromptPublication, PromptTemplate, PromptVersion
from tests.factories import ModelAliasFactory, TeamFactory
from tests.portal.factories import MembershipFactory, ProductFactory, token_client
from tests.prompts.factories import TICKER_MESSAGES, TICKER_VARIABLES, team_owner

pytestmark = pytest.mark.django_db


@pytest.fixture
def team():
    return TeamFactory()


@pytest.fixture
def owner(team):
    return token_client(team_owner(team))


@pytest.fixture
def alias():
    return ModelAliasFactory(name="mini")


def create(client, team, alias, **fields):
    body = {
        "slug": "ticker-summary",
        "name": "Ticker summary",
        "team": team.pk,
        "alias": alias.name,
        "messages": TICKER_MESSAGES,
        "variables": TICKER_VARIABLES,
        **fields,
    }
    response = client.post("/api/v1/prompts/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_creating_a_prompt_answers_its_draft_with_no_version_and_nothing_published(owner, team, alias):
    prompt = create(owner, team, alias, description="For the morning note", parameters={"temperature": 0.2})

    assert prompt["slug"] == "ticker-summary" and prompt["team"] == team.pk and prompt["tenant"] == team.tenant_id
    assert prompt["messages"] == TICKER_MESSAGES
    assert prompt["variables"]["ticker"] == {"type": "string", "required": True}
    assert prompt["variables"]["quarter"]["values"] == ["Q1", "Q2", "Q3", "Q4"]
    assert prompt["parameters"] == {"temperature": 0.2} and prompt["description"] == "For the morning note"
    assert prompt["latest_version"] is None and prompt["publications"] == {}
    assert prompt["environments"] == ["dev", "staging", "prod"]
    assert AuditLogEntry.objects.filter(action="prompt.created", target_id=str(prompt["id"])).exists()


def test_the_list_and_the_read_show_the_same_prompt(owner, team, alias):
    prompt = create(owner, team, alias)

    listed = owner.get("/api/v1/prompts/").json()
    read = owner.get(f"/api/v1/prompts/{prompt['id']}").json()

    assert [row["id"] for row in listed["results"]] == [prompt["id"]]
    assert listed["results"][0] == read == prompt


def test_the_list_filters_by_slug_and_team(owner, team, alias):
    prompt = create(owner, team, alias)
    create(owner, team, alias, slug="other")

    by_slug = owner.get("/api/v1/prompts/?slug=ticker-summary").json()["results"]
    by_other_team = owner.get(f"/api/v1/prompts/?team={TeamFactory(tenant=team.tenant).pk}").json()["results"]

    assert [row["id"] for row in by_slug] == [prompt["id"]]
    assert by_other_team == []


def test_patching_changes_the_draft_and_no_version(owner, team, alias):
    prompt = create(owner, team, alias)
    owner.post(f"/api/v1/prompts/{prompt['id']}/versions/", {"message": "first"}, format="json")
    messages = [TICKER_MESSAGES[0], {"role": "user", "content": "Just {{ticker}}, please."}]

    response = owner.patch(f"/api/v1/prompts/{prompt['id']}/", {"messages": messages, "name": "Short"}, format="json")

    assert response.status_code == 200, response.content
    changed = response.json()
    assert changed["messages"] == messages and changed["name"] == "Short"
    assert list(changed["variables"]) == ["ticker"]  # the specs of the variables the new text still uses
    assert PromptVersion.objects.get(template_id=prompt["id"]).messages == TICKER_MESSAGES


def test_creating_a_version_freezes_the_draft_as_the_next_number_with_a_diff(owner, team, alias):
    prompt = create(owner, team, alias)
    first = owner.post(f"/api/v1/prompts/{prompt['id']}/versions/", {"message": "first cut"}, format="json")
    owner.patch(f"/api/v1/prompts/{prompt['id']}", {"description": "not frozen"}, format="json")
    changed = [TICKER_MESSAGES[0], {"role": "user", "content": "Summarise {{ticker}} for {{quarter}}."}]
    owner.patch(f"/api/v1/prompts/{prompt['id']}", {"messages": changed}, format="json")

    second = owner.post(f"/api/v1/prompts/{prompt['id']}/versions", {}, format="json")

    assert first.status_code == 201 and first.json()["version"] == 1 and first.json()["message"] == "first cut"
    assert second.status_code == 201 and second.json()["version"] == 2
    assert "+Summarise {{ticker}} for {{quarter}}." in second.json()["diff"]
    listed = owner.get(f"/api/v1/prompts/{prompt['id']}/versions/").json()["results"]
    assert [row["version"] for row in listed] == [2, 1] and "diff" not in listed[0]
    read = owner.get(f"/api/v1/prompts/{prompt['id']}/versions/1/").json()
    assert read["messages"] == TICKER_MESSAGES and read["diff"] == ""
    assert owner.get(f"/api/v1/prompts/{prompt['id']}").json()["latest_version"] == 2


def test_a_draft_equal_to_the_latest_version_is_not_frozen_again(owner, team, alias):
    prompt = create(owner, team, alias)
    owner.post(f"/api/v1/prompts/{prompt['id']}/versions/", {}, format="json")

    again = owner.post(f"/api/v1/prompts/{prompt['id']}/versions/", {}, format="json")

    assert again.status_code == 400 and again.json()["param"] == "draft"
    assert PromptVersion.objects.filter(template_id=prompt["id"]).count() == 1


def test_a_version_that_does_not_exist_answers_404(owner, team, alias):
    prompt = create(owner, team, alias)

    for number in ("1", "0", "99999999999999999999999"):
        response = owner.get(f"/api/v1/prompts/{prompt['id']}/versions/{number}")
        assert response.status_code == 404 and response.json()["code"] == "not_found", number


def _two_versions(owner, prompt):
    owner.post(f"/api/v1/prompts/{prompt['id']}/versions/", {}, format="json")
    owner.patch(
        f"/api/v1/prompts/{prompt['id']}",
        {"messages": [{"role": "user", "content": "v2 of {{ticker}}"}]},
        format="json",
    )
    owner.post(f"/api/v1/prompts/{prompt['id']}/versions/", {}, format="json")


def test_publishing_a_version_shows_in_the_read_shape_and_the_audit_log(owner, team, alias):
    prompt = create(owner, team, alias)
    _two_versions(owner, prompt)

    response = owner.post(
        f"/api/v1/prompts/{prompt['id']}/publish", {"environment": "prod", "version": 1}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["environment"] == "prod" and response.json()["split"] == {"1": 100}
    assert response.json()["action"] == "published"
    assert owner.get(f"/api/v1/prompts/{prompt['id']}").json()["publications"] == {"prod": {"1": 100}}
    entry = AuditLogEntry.objects.get(action="prompt.published")
    assert entry.details["environment"] == "prod" and entry.details["split"] == {"1": 100}


def test_a_split_serves_two_versions_by_percentage(owner, team, alias):
    prompt = create(owner, team, alias)
    _two_versions(owner, prompt)

    response = owner.post(
        f"/api/v1/prompts/{prompt['id']}/publish/",
        {"environment": "staging", "split": {"1": 90, "2": 10}},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json()["split"] == {"1": 90, "2": 10} and response.json()["action"] == "split"
    assert owner.get(f"/api/v1/prompts/{prompt['id']}").json()["publications"] == {"staging": {"1": 90, "2": 10}}
    assert AuditLogEntry.objects.filter(action="prompt.split").count() == 1


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"environment": "prod", "split": {"1": 90, "2": 20}}, "split"),
        ({"environment": "prod", "split": {"1": 90, "7": 10}}, "split.7"),
        ({"environment": "prod", "split": {"1": 0, "2": 100}}, "split.1"),
        ({"environment": "prod", "version": 3}, "version"),
        ({"environment": "prod", "version": "1"}, "version"),
        ({"environment": "prod", "version": 1, "split": {"1": 100}}, "version"),
        ({"environment": "prod"}, "version"),
        ({"environment": "qa", "version": 1}, "environment"),
        ({"version": 1}, "environment"),
        ({"environment": "prod", "version": 1, "when": "now"}, "when"),
    ],
)
def test_a_publication_that_cannot_be_served_names_its_param(owner, team, alias, body, param):
    prompt = create(owner, team, alias)
    _two_versions(owner, prompt)

    response = owner.post(f"/api/v1/prompts/{prompt['id']}/publish", body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["param"] == param and response.json()["code"] == "invalid"
    assert not PromptPublication.objects.exists()


def test_rolling_back_serves_the_version_before_and_again_goes_further_back(owner, team, alias):
    prompt = create(owner, team, alias)
    _two_versions(owner, prompt)
    publish = f"/api/v1/prompts/{prompt['id']}/publish"
    owner.post(publish, {"environment": "prod", "version": 1}, format="json")
    owner.post(publish, {"environment": "prod", "version": 2}, format="json")

    rolled = owner.post(f"/api/v1/prompts/{prompt['id']}/rollback", {"environment": "prod"}, format="json")

    assert rolled.status_code == 200, rolled.content
    assert rolled.json()["split"] == {"1": 100} and rolled.json()["action"] == "rolled_back"
    assert owner.get(f"/api/v1/prompts/{prompt['id']}").json()["publications"] == {"prod": {"1": 100}}
    assert AuditLogEntry.objects.filter(action="prompt.rolled_back").count() == 1
    nothing_before = owner.post(f"/api/v1/prompts/{prompt['id']}/rollback/", {"environment": "prod"}, format="json")
    assert nothing_before.status_code == 400 and nothing_before.json()["param"] == "environment"


def test_rolling_back_where_nothing_is_published_is_refused(owner, team, alias):
    prompt = create(owner, team, alias)

    response = owner.post(f"/api/v1/prompts/{prompt['id']}/rollback", {"environment": "dev"}, format="json")

    assert response.status_code == 400 and response.json()["param"] == "environment"


def test_rendering_the_draft_substitutes_values_and_defaults(owner, team, alias):
    prompt = create(owner, team, alias)

    response = owner.post(f"/api/v1/prompts/{prompt['id']}/render", {"variables": {"ticker": "ACME"}}, format="json")

    assert response.status_code == 200, response.content
    assert response.json() == {
        "version": None,
        "messages": [TICKER_MESSAGES[0], {"role": "user", "content": "Summarise ACME for Q1 in 50 words."}],
    }


def test_rendering_a_version_uses_its_frozen_text_not_the_draft(owner, team, alias):
    prompt = create(owner, team, alias)
    _two_versions(owner, prompt)

    first = owner.post(
        f"/api/v1/prompts/{prompt['id']}/render/", {"variables": {"ticker": "X"}, "version": 1}, format="json"
    )
    second = owner.post(
        f"/api/v1/prompts/{prompt['id']}/render/", {"variables": {"ticker": "X"}, "version": 2}, format="json"
    )

    assert first.json()["version"] == 1 and first.json()["messages"][1]["content"] == "Summarise X for Q1 in 50 words."
    assert second.json()["messages"] == [{"role": "user", "content": "v2 of X"}]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "variables.ticker"),
        ({"variables": {"ticker": 7}}, "variables.ticker"),
        ({"variables": {"ticker": "A", "quarter": "Q5"}}, "variables.quarter"),
        ({"variables": {"ticker": "A", "words": "50"}}, "variables.words"),
        ({"variables": {"ticker": "A", "sector": "tech"}}, "variables.sector"),
        ({"variables": ["ticker"]}, "variables"),
        ({"variables": {"ticker": "A"}, "version": 9}, "version"),
        ({"variables": {"ticker": "A"}, "version": True}, "version"),
    ],
)
def test_rendering_with_wrong_variables_names_the_variable(owner, team, alias, body, param):
    prompt = create(owner, team, alias)

    response = owner.post(f"/api/v1/prompts/{prompt['id']}/render", body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["param"] == param


def test_a_value_that_looks_like_a_variable_is_rendered_as_text(owner, team, alias):
    prompt = create(owner, team, alias)

    response = owner.post(
        f"/api/v1/prompts/{prompt['id']}/render",
        {"variables": {"ticker": "{{quarter}} {% import os %} ${7*7}"}},
        format="json",
    )

    assert (
        response.json()["messages"][1]["content"] == "Summarise {{quarter}} {% import os %} ${7*7} for Q1 in 50 words."
    )


def test_a_member_of_the_team_reads_and_renders_but_cannot_write(team, owner, alias):
    prompt = create(owner, team, alias)
    member = token_client(MembershipFactory(team=team, role=Membership.Role.MEMBER).user)

    assert member.get(f"/api/v1/prompts/{prompt['id']}").status_code == 200
    assert (
        member.post(f"/api/v1/prompts/{prompt['id']}/render", {"variables": {"ticker": "A"}}, format="json").status_code
        == 200
    )
    refused = member.patch(f"/api/v1/prompts/{prompt['id']}", {"name": "x" * 10_000}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "permission_denied"  # before the body is read
    assert PromptTemplate.objects.get(pk=prompt["id"]).name == "Ticker summary"


def test_a_tenant_admin_bundles_the_prompt_in_a_product_of_the_tenant(team, owner, alias):
    prompt = create(owner, team, alias)
    product = ProductFactory(tenant=team.tenant)
    admin_user = MembershipFactory(team=None, tenant=team.tenant, role=Membership.Role.TENANT_ADMIN).user
    admin = token_client(admin_user)

    response = admin.patch(f"/api/v1/prompts/{prompt['id']}", {"products": [product.pk]}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["products"] == [product.pk]
    assert admin.get(f"/api/v1/products/{product.pk}").json()["prompts"] == ["ticker-summary"]
    # The team's owner manages the prompt, not the tenant's products.
    refused = owner.patch(f"/api/v1/prompts/{prompt['id']}", {"products": []}, format="json")
    assert refused.status_code == 403


def test_a_product_bundles_only_its_own_tenants_prompts(team, owner, alias):
    prompt = create(owner, team, alias)
    foreign = ProductFactory(tenant=TeamFactory().tenant)
    platform = ProductFactory(tenant=None)
    admin = token_client(MembershipFactory(team=None, tenant=team.tenant, role=Membership.Role.TENANT_ADMIN).user)

    for product in (foreign, platform):
        response = admin.patch(f"/api/v1/prompts/{prompt['id']}", {"products": [product.pk]}, format="json")
        assert response.status_code == 400 and response.json()["param"] == "products[0]"
    assert not PromptTemplate.objects.get(pk=prompt["id"]).products.exists()


def test_products_can_be_given_when_creating_and_are_all_or_nothing(team, alias):
    admin = token_client(MembershipFactory(team=None, tenant=team.tenant, role=Membership.Role.TENANT_ADMIN).user)
    product = ProductFactory(tenant=team.tenant)

    refused = admin.post(
        "/api/v1/prompts/",
        {"slug": "s", "name": "S", "team": team.pk, "alias": alias.name, "messages": TICKER_MESSAGES, "products": [0]},
        format="json",
    )
    created = create(admin, team, alias, products=[product.pk])

    assert refused.status_code == 400 and refused.json()["param"] == "products[0]"
    assert created["products"] == [product.pk]
    assert list(PromptTemplate.objects.values_list("slug", flat=True)) == ["ticker-summary"]
