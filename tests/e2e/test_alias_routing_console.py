"""A platform admin, in a real browser, makes an alias route to the cheapest deployment above a quality floor:
a wrong floor is refused beside its field with its path, the right one is saved and the catalogue shows it."""

import re

import pytest

from config.asgi import application
from routing.catalogue import import_catalogue
from routing.models import ModelAlias
from tests.catalogue.documents import platform, routing_catalogue  # noqa: F401 -- a fixture
from tests.e2e.conftest import screenshot
from tests.portal.factories import PASSWORD, UserFactory
from tests.upstreams.server import LoopbackServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("platform")]

PORT = 8620  # this suite's browser tests use 8620-8629


def test_an_admin_sets_cheapest_with_a_quality_floor_in_the_browser(page):
    import_catalogue(data=routing_catalogue())
    UserFactory(email="root@tollway.test", is_superuser=True, is_staff=True)

    with LoopbackServer(application, port=PORT, lifespan="on") as gateway:
        page.goto(f"{gateway.url}/accounts/login/")
        page.fill("input[name=login]", "root@tollway.test")
        page.fill("input[name=password]", PASSWORD)
        page.locator("form button[type=submit], form input[type=submit]").last.click()
        page.wait_for_url(re.compile(r".*/console/.*"))

        page.goto(f"{gateway.url}/console/catalogue/")
        assert page.get_by_test_id("routing-claude-sonnet").inner_text().strip() == "priority"
        page.get_by_test_id("edit-routing-claude-sonnet").click()
        form = page.get_by_test_id("routing-form")
        form.get_by_label("Strategy").select_option("cheapest")
        form.get_by_label("Quality floor").fill("7")
        form.get_by_test_id("save-routing").click()

        floor = page.locator("#field-min_quality")
        assert floor.locator(".field-error").inner_text() == "routing.min_quality: must be from 0 to 1, not 7.0"
        screenshot(page, "routing-01-floor-refused")
        assert ModelAlias.objects.get(name="claude-sonnet").routing == {}

        floor.locator("input").fill("0.8")
        page.get_by_test_id("save-routing").click()
        page.wait_for_url(re.compile(r".*/console/catalogue/#aliases$"))
        shown = page.get_by_test_id("routing-claude-sonnet").inner_text()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        screenshot(page, "routing-02-catalogue-shows-it")

    assert "cheapest" in shown and "quality ≥ 0.8" in shown
    assert overflow <= 0  # the routing columns fit the page at a desktop width
    assert ModelAlias.objects.get(name="claude-sonnet").routing == {"strategy": "cheapest", "min_quality": 0.8}
    assert page.console_errors == []
