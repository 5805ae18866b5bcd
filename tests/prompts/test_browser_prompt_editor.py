"""The editor's script in a real browser: the variables table follows the text as it is typed (first-use order,
settings kept when a name is removed and typed again), messages are added and removed, and what the page sends
is what the server saves."""

import re

import pytest

from config.asgi import application
from portal.prompts.models import PromptTemplate
from tests.e2e.conftest import browser, page, screenshot  # noqa: F401 -- fixtures
from tests.factories import ModelAliasFactory, TeamFactory
from tests.portal.factories import PASSWORD
from tests.prompts.factories import make_prompt, team_owner
from tests.upstreams.server import LoopbackServer

pytestmark = pytest.mark.django_db(transaction=True)

PORT = 19602  # this suite's ports: 19600-19699


def variable_names(tab) -> list[str]:
    return tab.locator("#variable-rows tr.variable-row").evaluate_all("rows => rows.map(r => r.dataset.variable)")


def test_the_variables_table_follows_the_text_and_the_saved_draft_is_what_was_typed(page):  # noqa: F811
    owner = team_owner(TeamFactory(name="Checkout", tenant__name="Acme"))
    prompt = make_prompt(team=owner.memberships.first().team, owner=owner, alias=ModelAliasFactory(name="mini").name)

    with LoopbackServer(application, port=PORT, lifespan="on") as server:
        page.goto(f"{server.url}/accounts/login/")
        page.fill("input[name=login]", owner.email)
        page.fill("input[name=password]", PASSWORD)
        page.locator("form button[type=submit], form input[type=submit]").last.click()
        page.wait_for_url(re.compile(r".*/console/.*"))
        page.goto(f"{server.url}/console/prompts/{prompt.pk}/")
        assert variable_names(page) == ["ticker", "quarter", "words"]

        user_text = page.locator("textarea[name=message_content]").nth(1)
        user_text.fill("Summarise {{ticker}} in {{words}} words.")
        assert variable_names(page) == ["ticker", "words"]
        user_text.fill("Summarise {{ticker}} for {{quarter}} in {{words}} words, \\{{literal}}.")
        assert variable_names(page) == ["ticker", "quarter", "words"]
        assert page.locator("#var_quarter_values").input_value() == "Q1, Q2, Q3, Q4"  # its settings came back

        page.get_by_test_id("add-message").click()
        page.locator("textarea[name=message_content]").nth(2).fill("Mention {{sector}}.")
        page.locator("select[name=message_role]").nth(2).select_option("assistant")
        assert variable_names(page) == ["ticker", "quarter", "words", "sector"]
        page.locator("#var_sector_type").select_option("enum")
        page.locator("#var_sector_values").fill("tech, energy")
        page.locator("#var_sector_default").fill("tech")
        assert not page.locator("input[name=var_sector_required]").is_checked()  # a default makes it optional
        page.locator("[data-remove-message]").first.click()  # the system message goes
        screenshot(page, "prompts-editor-rows")
        with page.expect_navigation():
            page.get_by_test_id("save-draft").click()
        assert page.locator(".flash-success").inner_text().startswith("Saved the draft")

    prompt.refresh_from_db()
    assert prompt.messages == [
        {"role": "user", "content": "Summarise {{ticker}} for {{quarter}} in {{words}} words, \\{{literal}}."},
        {"role": "assistant", "content": "Mention {{sector}}."},
    ]
    assert prompt.variables["sector"] == {
        "type": "enum",
        "required": False,
        "default": "tech",
        "values": ["tech", "energy"],
    }
    assert prompt.variables["words"] == {"type": "integer", "required": False, "default": 50}
    assert PromptTemplate.objects.count() == 1
    assert page.console_errors == []
