"""The prompt journey in a real browser (issue 13): write a prompt, test it on two aliases, publish v1, call it,
publish v2, roll back, call again. Headless Debian chromium, screenshots in test-artifacts/e2e/prompts-*.png.

"Call it" is POST /v1/prompts/{slug}/completions with the team's key, which answers `x-tollway-prompt:
slug@version` (the gateway's side of issue 13). Those steps live in `call_prompt` below; with
TOLLWAY_TEST_SKIP_PROMPT_CALLS=1 the journey runs without them (for a gateway that has no such endpoint yet).
"""

import os
import re
import time
from decimal import Decimal

import httpx
import pytest

from config.asgi import application
from portal import services as portal_services
from portal.models import AuditLogEntry, Membership, Subscription
from portal.prompts.models import PromptExample, PromptTemplate
from tests.e2e.conftest import browser, page, screenshot  # noqa: F401 -- fixtures
from tests.factories import DeploymentFactory, ProviderFactory, TeamFactory, make_alias
from tests.portal.factories import PASSWORD, MembershipFactory, ProductFactory, SubscriptionFactory
from tests.upstreams.openai_server import OpenAIUpstream
from tests.upstreams.server import LoopbackServer

pytestmark = pytest.mark.django_db(transaction=True)

GATEWAY_PORT, UPSTREAM_PORT = 19600, 19601  # this suite's ports: 19600-19699
SKIP_PROMPT_CALLS = os.environ.get("TOLLWAY_TEST_SKIP_PROMPT_CALLS", "") == "1"
# Within the bound of a key change: the gateway reloads prompts on the change feed, or on its snapshot refresh.
PUBLISH_BOUND_S = 5.0


def call_prompt(base: str, key: str, slug: str, variables: dict) -> httpx.Response:
    """One call of the prompt's own endpoint, as an application makes it."""
    return httpx.post(
        f"{base}/v1/prompts/{slug}/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"variables": variables},
        timeout=10,
    )


def expect_prompt_version(base: str, key: str, slug: str, version: int) -> None:
    """Callers get `slug@version` within the publication bound (skipped when the endpoint is not there yet)."""
    if SKIP_PROMPT_CALLS:
        return
    deadline = time.monotonic() + PUBLISH_BOUND_S
    while True:
        response = call_prompt(base, key, slug, {"ticker": "ACME"})
        served = response.headers.get("x-tollway-prompt")
        if response.status_code == 200 and served == f"{slug}@{version}":
            break
        assert time.monotonic() < deadline, f"still {response.status_code} {served!r}, expected {slug}@{version}"
        time.sleep(0.1)
    assert response.json()["choices"][0]["message"]["content"]


@pytest.fixture
def world():
    upstream = OpenAIUpstream()
    with LoopbackServer(upstream, port=UPSTREAM_PORT) as server:
        provider = ProviderFactory(name="openai-test", base_url=f"{server.url}/v1")
        cheap = DeploymentFactory(name="mini-cheap", provider=provider, input_per_1m=Decimal("0.15"))
        dear = DeploymentFactory(
            name="mini-dear", provider=provider, input_per_1m=Decimal("2.50"), output_per_1m=Decimal("10")
        )
        aliases = [make_alias("gpt-4o-mini", cheap), make_alias("gpt-4o", dear)]
        team = TeamFactory(name="Checkout", tenant__name="Acme")
        owner = MembershipFactory(team=team, role=Membership.Role.TEAM_OWNER, user__email="ada@acme.test").user
        product = ProductFactory(name="Chat")
        product.aliases.set(aliases)
        SubscriptionFactory(team=team, product=product, status=Subscription.Status.ACTIVE)
        key = portal_services.issue_api_key(team=team, name="journey").secret
        yield owner, key


def follow(tab, target) -> None:
    """Click a link or a form's button and wait for the next page: its elements, not the old page's, are read."""
    with tab.expect_navigation():
        target.click()


def sign_in(tab, base: str, email: str) -> None:
    tab.goto(f"{base}/accounts/login/")
    tab.fill("input[name=login]", email)
    tab.fill("input[name=password]", PASSWORD)
    tab.locator("form button[type=submit], form input[type=submit]").last.click()
    tab.wait_for_url(re.compile(r".*/console/.*"))


def test_write_test_on_two_aliases_publish_call_publish_again_roll_back_and_call_again(page, world):  # noqa: F811
    owner, key = world
    with LoopbackServer(application, port=GATEWAY_PORT, lifespan="on") as gateway:
        base = gateway.url
        sign_in(page, base, owner.email)

        # 1. Write the prompt: variables appear as they are typed, the preview renders the samples.
        follow(page, page.get_by_test_id("nav-prompts"))
        follow(page, page.get_by_test_id("new-prompt"))
        editor = page.get_by_test_id("prompt-editor")
        editor.locator("input[name=name]").fill("Ticker summary")
        editor.locator("input[name=slug]").fill("ticker-summary")
        editor.locator("select[name=alias]").select_option("gpt-4o-mini")
        contents = editor.locator("textarea[name=message_content]")
        contents.nth(0).fill("You are a terse equity analyst.")
        contents.nth(1).fill("Summarise {{ticker}} for {{quarter}}.")
        assert (
            page.get_by_test_id("variable-ticker").is_visible() and page.get_by_test_id("variable-quarter").is_visible()
        )
        page.locator("#var_quarter_type").select_option("enum")
        page.locator("#var_quarter_values").fill("Q1, Q2, Q3, Q4")
        page.locator("#var_quarter_default").fill("Q1")
        page.locator("#var_ticker_sample").fill("ACME")
        editor.locator("textarea[name=parameters]").fill('{"temperature": 0.2}')
        follow(page, page.get_by_test_id("preview"))
        preview = page.get_by_test_id("preview-result")
        assert "Summarise ACME for Q1." in preview.inner_text()
        screenshot(page, "prompts-01-draft-and-preview")
        follow(page, page.get_by_test_id("save-draft"))
        page.wait_for_url(re.compile(r".*/console/prompts/\d+/$"))
        prompt = PromptTemplate.objects.get(slug="ticker-summary")
        assert prompt.variables["quarter"] == {
            "type": "enum",
            "required": False,
            "default": "Q1",
            "values": ["Q1", "Q2", "Q3", "Q4"],
        }

        # 2. Freeze it as version 1.
        follow(page, page.get_by_test_id("tab-versions"))
        page.locator("input[name=message]").fill("first cut")
        follow(page, page.get_by_test_id("freeze"))
        assert page.get_by_test_id("version-1").is_visible()

        # 3. Test v1 on two aliases side by side, streaming; keep one run as an example.
        follow(page, page.get_by_test_id("tab-test"))
        page.fill("#test-key", key)
        page.locator("#test-version").select_option("1")
        page.fill("#test-var-ticker", "ACME")
        page.get_by_test_id("alias-gpt-4o").check()
        page.get_by_test_id("run").click()
        for alias in ("gpt-4o-mini", "gpt-4o"):
            run = page.get_by_test_id(f"run-{alias}")
            page.locator(f"[data-testid=run-{alias}].run-done, [data-testid=run-{alias}].run-failed").wait_for()
            assert "run-done" in run.get_attribute("class"), run.inner_text()
            assert run.locator(".run-output").inner_text() == "Hello from the stream."
            assert re.fullmatch(r"\d+ ms", run.locator(".run-latency").inner_text())
            assert run.locator(".run-cost").inner_text().startswith("$")
        assert (
            page.get_by_test_id("run-gpt-4o").locator(".run-cost").inner_text()
            != page.get_by_test_id("run-gpt-4o-mini").locator(".run-cost").inner_text()
        )  # priced with each deployment's own prices
        page.get_by_test_id("keep-gpt-4o").click()
        page.get_by_test_id("examples").locator("tbody tr").first.wait_for()
        screenshot(page, "prompts-02-test-runs-side-by-side")
        kept_cost = page.get_by_test_id("examples").locator("tbody tr").first.locator("td").nth(4).inner_text()
        assert kept_cost == page.get_by_test_id("run-gpt-4o").locator(".run-cost").inner_text()  # page and server agree
        example = PromptExample.objects.get()
        assert (example.version.number, example.alias, example.variables) == (1, "gpt-4o", {"ticker": "ACME"})
        assert example.cost_usd > 0 and example.output == "Hello from the stream."

        # 4. Publish v1 to prod, and call it.
        follow(page, page.get_by_test_id("tab-publishing"))
        publish_prod = page.get_by_test_id("publish-prod")
        publish_prod.locator("select[name=version]").select_option("1")
        follow(page, publish_prod.locator("button"))
        assert page.get_by_test_id("serving-prod").inner_text() == "serves v1"
        screenshot(page, "prompts-03-v1-in-prod")
        expect_prompt_version(base, key, "ticker-summary", 1)

        # 5. Change the draft, freeze v2 and publish it: callers get v2.
        follow(page, page.get_by_test_id("tab-draft"))
        page.locator("textarea[name=message_content]").nth(1).fill("Summarise {{ticker}} for {{quarter}} in one line.")
        follow(page, page.get_by_test_id("save-draft"))
        assert page.locator(".flash-success").inner_text().startswith("Saved the draft")
        follow(page, page.get_by_test_id("tab-versions"))
        page.locator("input[name=message]").fill("one line")
        follow(page, page.get_by_test_id("freeze"))
        assert "+Summarise {{ticker}} for {{quarter}} in one line." in page.get_by_test_id("diff-2").inner_text()
        screenshot(page, "prompts-04-v2-diff")
        follow(page, page.get_by_test_id("tab-publishing"))
        publish_prod = page.get_by_test_id("publish-prod")
        publish_prod.locator("select[name=version]").select_option("2")
        follow(page, publish_prod.locator("button"))
        assert page.get_by_test_id("serving-prod").inner_text() == "serves v2"
        expect_prompt_version(base, key, "ticker-summary", 2)

        # 6. Roll back in one click (after a confirm): prod serves v1 again, and callers get it.
        dialogs: list[str] = []
        page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
        follow(page, page.get_by_test_id("rollback-prod").locator("button"))
        assert page.get_by_test_id("serving-prod").inner_text() == "serves v1"
        assert dialogs and "Roll prod back to v1" in dialogs[0]
        history = page.get_by_test_id("history-prod").inner_text()
        screenshot(page, "prompts-05-rolled-back")
        expect_prompt_version(base, key, "ticker-summary", 1)
        follow(page, page.get_by_test_id("nav-prompts"))
        assert "prod: v1" in page.get_by_test_id("prompt-row-ticker-summary").inner_text()
        screenshot(page, "prompts-06-list")

    assert [line.split("\t")[1].split(" ")[0] for line in history.strip().splitlines()[1:]] == [
        "Rolled",
        "Published",
        "Published",
    ]
    actions = list(AuditLogEntry.objects.filter(target_id=str(prompt.pk)).values_list("action", flat=True))
    for action in ("prompt.created", "prompt.version_created", "prompt.example_kept", "prompt.published"):
        assert action in actions
    assert "prompt.rolled_back" in actions
    assert page.console_errors == []
