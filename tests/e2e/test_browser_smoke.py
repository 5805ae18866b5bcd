import pytest

from tests.e2e.conftest import screenshot
from tests.gateway import start_gateway

pytestmark = pytest.mark.django_db(transaction=True)


def test_chromium_renders_the_admin_sign_in_page_without_console_errors(page):
    with start_gateway() as gateway:
        page.goto(f"{gateway.url}/admin/login/")
        page.wait_for_load_state("networkidle")
        path = screenshot(page, "00-admin-login")

    assert page.title().startswith("Log in") and "Tollway" in page.title()
    assert path.stat().st_size > 1000
    assert page.console_errors == []
