"""The prompt editor in the console: creating a template, saving its draft, the preview with sample values,
and refusals shown beside the field they name."""

import pytest
from django.urls import reverse

from portal.models import AuditLogEntry
from portal.prompts.models import PromptTemplate
from tests.factories import ModelAliasFactory, TeamFactory
from tests.prompts.factories import make_prompt, team_owner

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner_and_team():
    team = TeamFactory(name="Checkout", tenant__name="Acme")
    return team_owner(team), team


def draft_form(team=None, **changes):
    form = {
        "name": "Ticker summary",
        "slug": "ticker-summary",
        "alias": changes.pop("alias"),
        "description": "",
        "message_role": ["system", "user"],
        "message_content": ["You are terse.", "Summarise {{ticker}} for {{quarter}}."],
        "var_ticker_type": "string",
        "var_ticker_required": "on",
        "var_quarter_type": "enum",
        "var_quarter_values": "Q1, Q2, Q3, Q4",
        "var_quarter_default": "Q1",
        "parameters": '{"temperature": 0.2}',
        "output_schema": "",
        "action": "save",
    }
    if team is not None:
        form["team"] = team.pk
    form.update(changes)
    return form


def test_an_owner_creates_a_prompt_whose_typed_variables_come_from_the_rows(client, owner_and_team):
    owner, team = owner_and_team
    alias = ModelAliasFactory().name
    client.force_login(owner)

    response = client.post(
        reverse("console:prompt-new"), draft_form(team, alias=alias, locked_parameters=["temperature"])
    )

    template = PromptTemplate.objects.get(slug="ticker-summary")
    assert response.status_code == 302 and response.headers["location"] == reverse("console:prompt", args=[template.pk])
    assert template.team == team and template.alias == alias
    assert template.messages[1] == {"role": "user", "content": "Summarise {{ticker}} for {{quarter}}."}
    assert template.variables == {
        "ticker": {"type": "string", "required": True},
        "quarter": {"type": "enum", "required": False, "default": "Q1", "values": ["Q1", "Q2", "Q3", "Q4"]},
    }
    assert template.parameters == {"temperature": 0.2} and template.locked_parameters == ["temperature"]
    assert AuditLogEntry.objects.filter(action="prompt.created", target_id=str(template.pk)).exists()


def test_a_refused_message_is_shown_beside_its_row_and_nothing_is_created(client, owner_and_team):
    owner, team = owner_and_team
    client.force_login(owner)
    form = draft_form(team, alias=ModelAliasFactory().name, message_content=["You are terse.", "Hello {{ 1x }}"])

    response = client.post(reverse("console:prompt-new"), form)

    assert response.status_code == 200
    rows = response.context["form"].message_rows
    assert rows[0]["error"] == "" and "is not a variable" in rows[1]["error"]
    assert 'data-testid="message-error"' in response.content.decode()
    assert not PromptTemplate.objects.exists()


def test_a_default_of_the_wrong_type_is_refused_beside_its_variable(client, owner_and_team):
    owner, team = owner_and_team
    client.force_login(owner)
    form = draft_form(
        team,
        alias=ModelAliasFactory().name,
        message_content=["Write {{words}} words."],
        message_role=["user"],
        var_words_type="integer",
        var_words_default="many",
    )

    response = client.post(reverse("console:prompt-new"), form)

    rows = {row["name"]: row for row in response.context["form"].variable_rows}
    assert "words must be an integer" in rows["words"]["error"]
    assert 'data-testid="variable-error-words"' in response.content.decode()


def test_bad_json_parameters_and_an_unknown_parameter_are_refused_beside_the_parameters_field(client, owner_and_team):
    owner, team = owner_and_team
    client.force_login(owner)
    alias = ModelAliasFactory().name

    not_json = client.post(reverse("console:prompt-new"), draft_form(team, alias=alias, parameters="{temperature"))
    unknown = client.post(reverse("console:prompt-new"), draft_form(team, alias=alias, parameters='{"temp": 1}'))

    assert "Not valid JSON" in not_json.context["form"].errors["parameters"][0]
    assert "unknown parameter 'temp'" in unknown.context["form"].errors["parameters"][0]
    assert not PromptTemplate.objects.exists()


def test_the_preview_renders_the_draft_with_the_samples_and_the_defaults_without_saving(client, owner_and_team):
    owner, team = owner_and_team
    template = make_prompt(team=team, owner=owner)
    client.force_login(owner)
    form = draft_form(alias=template.alias, action="preview", var_ticker_sample="ACME <b>")
    form["message_content"] = ["You are terse.", "Summarise {{ticker}} for {{quarter}}, not {{ '{{' }}."]
    form["message_content"][1] = "Summarise {{ticker}} for {{quarter}}; literal \\{{ stays."

    response = client.post(reverse("console:prompt", args=[template.pk]), form)

    assert response.status_code == 200
    assert response.context["preview"][1] == {"role": "user", "content": "Summarise ACME <b> for Q1; literal {{ stays."}
    assert "ACME &lt;b&gt;" in response.content.decode()  # shown as text, not markup
    template.refresh_from_db()
    assert template.messages[1]["content"] == "Summarise {{ticker}} for {{quarter}} in {{words}} words."


def test_a_preview_without_a_required_sample_says_so_beside_that_variable(client, owner_and_team):
    owner, team = owner_and_team
    template = make_prompt(team=team, owner=owner)
    client.force_login(owner)

    response = client.post(
        reverse("console:prompt", args=[template.pk]), draft_form(alias=template.alias, action="preview")
    )

    assert response.context["preview"] is None
    rows = {row["name"]: row for row in response.context["form"].variable_rows}
    assert rows["ticker"]["error"] == "variable 'ticker' is required."


def test_saving_the_draft_changes_the_template_and_keeps_its_versions(client, owner_and_team):
    owner, team = owner_and_team
    template = make_prompt(team=team, owner=owner)
    client.force_login(owner)
    form = draft_form(alias=template.alias, name="Ticker brief", is_shared="on")

    response = client.post(reverse("console:prompt", args=[template.pk]), form)

    assert response.status_code == 302
    template.refresh_from_db()
    assert template.name == "Ticker brief" and template.is_shared
    assert set(template.variables) == {"ticker", "quarter"}
    assert AuditLogEntry.objects.filter(action="prompt.updated", target_id=str(template.pk)).exists()


def test_the_editor_shows_the_stored_draft_with_its_variable_rows(client, owner_and_team):
    owner, team = owner_and_team
    template = make_prompt(team=team, owner=owner)
    client.force_login(owner)

    response = client.get(reverse("console:prompt", args=[template.pk]))
    page = response.content.decode()

    assert [row["name"] for row in response.context["form"].variable_rows] == ["ticker", "quarter", "words"]
    assert 'name="var_quarter_values" id="var_quarter_values" value="Q1, Q2, Q3, Q4"' in page
    assert 'name="var_words_default" id="var_words_default" value="50"' in page
    assert 'data-testid="save-draft"' in page and "/static/portal/prompts.js" in page


def test_a_member_of_the_team_reads_the_draft_without_any_write_button(client, owner_and_team):
    from portal.models import Membership
    from tests.portal.factories import MembershipFactory

    owner, team = owner_and_team
    template = make_prompt(team=team, owner=owner)
    member = MembershipFactory(team=team, tenant=team.tenant, role=Membership.Role.MEMBER).user
    client.force_login(member)

    page = client.get(reverse("console:prompt", args=[template.pk])).content.decode()
    listing = client.get(reverse("console:prompts")).content.decode()

    assert 'data-testid="read-only"' in page and "disabled" in page
    assert 'data-testid="save-draft"' not in page and 'data-testid="preview"' not in page
    assert template.slug in listing and 'data-testid="new-prompt"' not in listing


def test_a_draft_without_messages_is_refused_beside_the_messages(client, owner_and_team):
    owner, team = owner_and_team
    template = make_prompt(team=team, owner=owner)
    client.force_login(owner)
    form = draft_form(alias=template.alias)
    form["message_role"], form["message_content"] = [], []

    response = client.post(reverse("console:prompt", args=[template.pk]), form)

    assert response.status_code == 200
    assert "non-empty list" in response.context["form"].messages_error
    assert 'data-testid="messages-error"' in response.content.decode()
    template.refresh_from_db()
    assert len(template.messages) == 2


def test_an_unknown_role_is_refused_beside_its_row(client, owner_and_team):
    owner, team = owner_and_team
    template = make_prompt(team=team, owner=owner)
    client.force_login(owner)
    form = draft_form(alias=template.alias, message_role=["system", "wizard"])

    response = client.post(reverse("console:prompt", args=[template.pk]), form)

    rows = response.context["form"].message_rows
    assert rows[0]["error"] == "" and rows[1]["error"].startswith("role must be one of system")
