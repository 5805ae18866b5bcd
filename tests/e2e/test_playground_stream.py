"""The playground in a real browser: a key pasted, a message sent, the answer streamed into the page chunk by
chunk through the shared event-stream reader (portal/static/portal/sse.js, which the prompt test runs use too)."""

import re
from decimal import Decimal

import pytest

from config.asgi import application
from portal import services as portal_services
from portal.models import Membership, Subscription
from tests.e2e.conftest import browser, page  # noqa: F401 -- fixtures
from tests.factories import DeploymentFactory, ProviderFactory, TeamFactory, make_alias
from tests.portal.factories import PASSWORD, MembershipFactory, ProductFactory, SubscriptionFactory
from tests.upstreams.openai_server import OpenAIUpstream
from tests.upstreams.server import LoopbackServer

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_streamed_answer_fills_the_chat_and_its_usage_is_shown(page):  # noqa: F811
    upstream = OpenAIUpstream()
    with LoopbackServer(upstream) as upstream_server:
        provider = ProviderFactory(name="openai-test", base_url=f"{upstream_server.url}/v1")
        alias = make_alias("gpt-4o-mini", DeploymentFactory(provider=provider, input_per_1m=Decimal("0.15")))
        team = TeamFactory()
        user = MembershipFactory(team=team, role=Membership.Role.TEAM_OWNER).user
        product = ProductFactory()
        product.aliases.set([alias])
        SubscriptionFactory(team=team, product=product, status=Subscription.Status.ACTIVE)
        key = portal_services.issue_api_key(team=team, name="playground").secret
        with LoopbackServer(application, lifespan="on") as gateway:
            page.goto(f"{gateway.url}/accounts/login/")
            page.fill("input[name=login]", user.email)
            page.fill("input[name=password]", PASSWORD)
            page.locator("form button[type=submit], form input[type=submit]").last.click()
            page.wait_for_url(re.compile(r".*/console/.*"))
            page.goto(f"{gateway.url}/console/playground/")
            page.fill("#pg-key", key)
            page.fill("#pg-model", "gpt-4o-mini")
            assert page.locator("#pg-stream").is_checked()
            page.fill("#pg-message", "Hello there")
            page.click("#pg-send")
            page.wait_for_function("document.getElementById('pg-status').textContent.includes('out tokens')")
            assert "Hello from the stream." in page.locator("#pg-log").inner_text()
            assert "first token after" in page.locator("#pg-status").inner_text()
            assert upstream.log.last["json"]["stream"] is True
            assert not page.console_errors, page.console_errors
