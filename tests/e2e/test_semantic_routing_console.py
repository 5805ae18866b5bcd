"""A platform admin, in a real browser, adds a semantic route with an example prompt to an alias: a route to an
unknown target is refused beside the routes with its path; saved, the next call through the openai SDK with a
prompt like the example goes to the route's deployment, and x-tollway-route says so."""

import re
import time

import openai
import pytest
import yaml

from config.asgi import application
from portal import services
from routing.catalogue import import_catalogue
from routing.models import ModelAlias
from tests.catalogue.documents import platform  # noqa: F401 -- a fixture
from tests.e2e.conftest import screenshot
from tests.portal.factories import PASSWORD, TeamFactory, UserFactory
from tests.upstreams.canned_server import CannedUpstream
from tests.upstreams.server import LoopbackServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("platform")]

CHIT_CHAT = {"name": "chit-chat", "target": "cheap-llama", "examples": ["Hi!", "Thanks, that helps"]}
CODE = {"name": "code", "target": "code-model", "examples": ["Write a Python function that reverses a string"]}
PROMPT = [{"role": "user", "content": "Write a Python function that reverses a list"}]


def catalogue(upstream_url: str) -> dict:
    names = ["cheap-llama", "code-model", "premium-gpt4"]
    return {
        "providers": [{"name": "canned", "kind": "openai-compatible", "base_url": f"{upstream_url}/v1"}],
        "deployments": [
            {"name": n, "provider": "canned", "model": n, "input_per_1m": "1", "output_per_1m": "2"} for n in names
        ],
        "aliases": [
            {
                "name": "by-intent",
                "deployments": names,
                "routing": {"strategy": "semantic", "routes": [CHIT_CHAT], "threshold": 0.6, "default": "premium-gpt4"},
            }
        ],
    }


def test_an_admin_adds_a_semantic_route_in_the_browser_and_the_next_call_goes_there(page):
    canned = CannedUpstream()
    with LoopbackServer(canned) as upstream:
        for name in ("cheap-llama", "code-model", "premium-gpt4"):
            canned.answer(name, f"answered by {name}")
        import_catalogue(data=catalogue(upstream.url))
        UserFactory(email="root@tollway.test", is_superuser=True, is_staff=True)
        key = services.issue_api_key(team=TeamFactory(), name="browser").secret
        with LoopbackServer(application, lifespan="on") as gateway:
            after = edit_in_the_browser_then_call(page, gateway, key)

    assert after.headers["x-tollway-deployment"] == "code-model"
    assert after.parse().choices[0].message.content == "answered by code-model"
    assert re.fullmatch(r"semantic \(route code, 0\.\d\d\)", after.headers["x-tollway-route"])
    stored = ModelAlias.objects.get(name="by-intent").routing
    assert stored["routes"] == [CHIT_CHAT, CODE] and stored["default"] == "premium-gpt4"
    assert page.console_errors == []


def edit_in_the_browser_then_call(page, gateway, key: str):
    """The call before (the default), the edits in the browser, and the first call the new route took."""
    sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=60)

    before = sdk.chat.completions.with_raw_response.create(model="by-intent", messages=PROMPT)
    assert before.headers["x-tollway-deployment"] == "premium-gpt4"  # no code route yet: the default

    page.goto(f"{gateway.url}/accounts/login/")
    page.fill("input[name=login]", "root@tollway.test")
    page.fill("input[name=password]", PASSWORD)
    page.locator("form button[type=submit], form input[type=submit]").last.click()
    page.wait_for_url(re.compile(r".*/console/.*"))
    alias = ModelAlias.objects.get(name="by-intent")
    page.goto(f"{gateway.url}/console/catalogue/aliases/{alias.pk}/routing/")

    form = page.get_by_test_id("routing-form")
    routes = form.get_by_label("Routes")
    assert yaml.safe_load(routes.input_value()) == [CHIT_CHAT]
    routes.fill(yaml.safe_dump([CHIT_CHAT, {**CODE, "target": "no-such-model"}], sort_keys=False))
    form.get_by_test_id("save-routing").click()
    error = page.locator("#field-routes .field-error")
    assert error.inner_text() == "routing.routes[1].target: unknown alias 'no-such-model'"
    screenshot(page, "semantic-01-unknown-target-refused")

    page.get_by_test_id("routing-form").get_by_label("Routes").fill(yaml.safe_dump([CHIT_CHAT, CODE], sort_keys=False))
    page.get_by_test_id("save-routing").click()
    page.wait_for_url(re.compile(r".*/console/catalogue/#aliases$"))
    screenshot(page, "semantic-02-saved")

    # The gateway applies the change from its change feed within seconds.
    deadline = time.monotonic() + 20
    while True:
        after = sdk.chat.completions.with_raw_response.create(model="by-intent", messages=PROMPT)
        if after.headers["x-tollway-deployment"] == "code-model" or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    return after
