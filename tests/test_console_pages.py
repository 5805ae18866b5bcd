import httpx
import pytest

from tests.gateway import start_gateway

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_admin_console_and_its_styles_are_served_next_to_the_gateway():
    with start_gateway() as gateway:
        login = httpx.get(f"{gateway.url}/admin/login/")
        css = httpx.get(f"{gateway.url}/static/admin/css/base.css")
        health = httpx.get(f"{gateway.url}/healthz")

    assert login.status_code == 200 and "<form" in login.text
    assert login.headers["x-frame-options"] == "DENY"
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]
    assert health.json() == {"status": "ok"}
