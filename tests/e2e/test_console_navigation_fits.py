"""The console's top bar on the demo set-up (platform admin, a pending approval, an unread notice: the
longest bar there is) keeps every item on one line at desktop widths (down to 1181 px, the narrowest before
the bar folds) and folds into the menu on a phone."""

import io
import re

import pytest
from django.core.management import call_command

from tests.e2e.conftest import screenshot
from tests.gateway import start_gateway

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo_console(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    out = io.StringIO()
    call_command("bootstrap_demo", "--gateway-url", "http://127.0.0.1:8000", "--with-demo-provider", stdout=out)
    password = re.search(r"^TOLLWAY_ADMIN_PASSWORD=(.+)$", out.getvalue(), re.M).group(1)
    with start_gateway() as gateway:
        yield gateway.url, password


def signed_in_page(browser, base: str, password: str, width: int):
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=login]", "admin@localhost")
    page.fill("input[name=password]", password)
    page.locator("form button[type=submit], form input[type=submit]").last.click()
    page.wait_for_url(re.compile(r".*/console/.*"))
    return page


@pytest.mark.parametrize("width", [1440, 1280, 1181])
def test_sign_out_stays_on_one_line_and_the_bar_does_not_overflow(browser, demo_console, width):
    base, password = demo_console
    page = signed_in_page(browser, base, password, width)
    try:
        screenshot(page, f"nav-{width}")
        sign_out = page.get_by_role("button", name="Sign out").bounding_box()
        account = page.get_by_role("link", name="Account", exact=True).bounding_box()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        bar_height = page.locator(".topbar").bounding_box()["height"]
        bar_content_right = page.evaluate(
            "(() => { const bar = document.querySelector('.topbar-inner'); const r = bar.getBoundingClientRect();"
            " return r.right - parseFloat(getComputedStyle(bar).paddingRight); })()"
        )
        email_is_visible = page.locator(".nav-email").is_visible()
    finally:
        page.context.close()

    # One line of text, like its neighbour "Account"; two lines would make it about 23 px taller.
    assert sign_out["height"] == pytest.approx(account["height"], abs=1)
    assert sign_out["y"] == pytest.approx(account["y"], abs=1)
    assert sign_out["x"] + sign_out["width"] <= bar_content_right + 0.5  # inside the bar, not past its edge
    assert email_is_visible
    assert overflow <= 0
    assert bar_height <= 70  # one row: the bar's minimum height is 60 px


def test_on_a_phone_the_bar_folds_into_a_menu_with_sign_out_on_one_line(browser, demo_console):
    base, password = demo_console
    page = signed_in_page(browser, base, password, 390)
    try:
        assert not page.get_by_role("button", name="Sign out").is_visible()
        page.locator("[data-nav-toggle]").click()
        screenshot(page, "nav-phone-open")
        sign_out = page.get_by_role("button", name="Sign out").bounding_box()
        account = page.get_by_role("link", name="Account", exact=True).bounding_box()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    finally:
        page.context.close()

    assert sign_out["height"] == pytest.approx(account["height"], abs=1)
    assert overflow <= 0
