"""The experiment comparison in a real browser: from the catalogue, a finance user opens `smart`'s arms and sees
both arms' figures (records of two arms made with factories), on a desktop and on a phone-sized screen."""

import re

import pytest

from tests.billing.test_experiment_comparison import EXPERIMENT, seed
from tests.e2e.test_dashboards import sign_in
from tests.gateway import start_gateway
from tests.portal.test_console_world import build_world

pytestmark = pytest.mark.django_db(transaction=True)


def arm_figures(page, arm: str) -> dict[str, str]:
    row = page.get_by_test_id(f"arms-{EXPERIMENT}").get_by_test_id(f"arm-{arm}")
    return {
        name: row.get_by_test_id(f"arm-{name}").inner_text().strip()
        for name in ("share", "requests", "cost", "cost-per-request", "error-rate", "feedback-count", "feedback-mean")
    }


def test_finance_opens_the_arms_of_an_experiment_from_the_catalogue(browser, settings, tmp_path):
    settings.TOLLWAY_AGGREGATE_SETTLE_S = 0  # the seeded records are aggregated at once
    world = build_world()
    alias = seed(world)

    with start_gateway() as gateway:
        errors: list[str] = []
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        sign_in(page, gateway.url, "finance@acme.test")
        page.goto(f"{gateway.url}/console/catalogue/")
        page.get_by_test_id("compare-arms-smart").click()
        page.wait_for_url(re.compile(rf".*/console/dashboards/experiments/{alias.pk}/"))

        assert arm_figures(page, "cheap-llama") == {
            "share": "70%", "requests": "4", "cost": "$0.003", "cost-per-request": "$0.00075",
            "error-rate": "25.0%", "feedback-count": "2", "feedback-mean": "0.75",
        }  # fmt: skip
        assert arm_figures(page, "mid-mixtral") == {
            "share": "30%", "requests": "2", "cost": "$0.04", "cost-per-request": "$0.02",
            "error-rate": "0.0%", "feedback-count": "1", "feedback-mean": "0.20",
        }  # fmt: skip
        latency = page.get_by_test_id("arm-mid-mixtral").get_by_test_id("arm-latency-p95").inner_text()
        assert re.fullmatch(r"[\d,]+ ms", latency)
        desktop = tmp_path / "experiment-arms-desktop.png"
        page.screenshot(path=str(desktop), full_page=True)
        context.close()

        # A phone: the table stacks its cells, the page never scrolls sideways.
        context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        sign_in(page, gateway.url, "finance@acme.test")
        page.goto(f"{gateway.url}/console/dashboards/experiments/{alias.pk}/")
        assert arm_figures(page, "mid-mixtral")["requests"] == "2"
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        phone = tmp_path / "experiment-arms-phone.png"
        page.screenshot(path=str(phone), full_page=True)
        context.close()

    assert errors == []
    assert desktop.stat().st_size > 10_000 and phone.stat().st_size > 10_000
