"""A platform admin, in a real browser, sets part two's routing on an alias: a frozen bandit with its weights, an
A/B experiment whose arms first add up to too much (refused beside the arms) and the learned strategy's trade-off
(the page shows the trained model it routes with). Each is stored as the catalogue YAML would store it, and the
next calls through the openai SDK route by it: x-tollway-route says so."""

import json
import re
import time

import openai
import pytest

from config.asgi import application
from portal import services
from routing import services as routing_services
from routing.catalogue import import_catalogue
from routing.models import ModelAlias
from tests.catalogue.documents import platform  # noqa: F401 -- a fixture
from tests.e2e.conftest import screenshot
from tests.portal.factories import PASSWORD, TeamFactory, UserFactory
from tests.upstreams.canned_server import CannedUpstream
from tests.upstreams.server import LoopbackServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("platform")]

PORT = 19210  # this module's gateway (the upstream takes a free port)
SQL = "Fix this SQL: select the names of users older than 30"
LINES = [
    {"prompt": f"Fix this SQL query {n}: select the orders of customer {n}", "scores": {"cheap": 1, "premium": 1}}
    for n in range(30)
] + [{"prompt": f"Write a sonnet about the sea, poem {n}", "scores": {"cheap": 0, "premium": 1}} for n in range(30)]


@pytest.fixture
def gateway():
    """A gateway serving the console and /v1, an alias `router` over premium then cheap, and a key for it."""
    canned = CannedUpstream()
    with LoopbackServer(canned) as upstream:
        canned.answer("cheap", "cheap answer")
        canned.answer("premium", "premium answer")
        import_catalogue(
            data={
                "providers": [{"name": "canned", "kind": "openai-compatible", "base_url": f"{upstream.url}/v1"}],
                "deployments": [
                    {"name": "premium", "provider": "canned", "model": "premium", "quality": 0.9,
                     "input_per_1m": "10", "output_per_1m": "30"},
                    {"name": "cheap", "provider": "canned", "model": "cheap", "quality": 0.6,
                     "input_per_1m": "0.2", "output_per_1m": "0.2"},
                ],
                "aliases": [{"name": "router", "deployments": ["premium", "cheap"]}],
            }
        )  # fmt: skip
        UserFactory(email="root@tollway.test", is_superuser=True, is_staff=True)
        key = services.issue_api_key(team=TeamFactory(), name="browser").secret
        with LoopbackServer(application, port=PORT, lifespan="on") as served:
            served.sdk = openai.OpenAI(base_url=f"{served.url}/v1", api_key=key, max_retries=0, timeout=60)
            yield served


def open_routing_form(page, gateway):
    page.goto(f"{gateway.url}/accounts/login/")
    page.fill("input[name=login]", "root@tollway.test")
    page.fill("input[name=password]", PASSWORD)
    page.locator("form button[type=submit], form input[type=submit]").last.click()
    page.wait_for_url(re.compile(r".*/console/.*"))
    page.goto(f"{gateway.url}/console/catalogue/aliases/{ModelAlias.objects.get(name='router').pk}/routing/")
    return page.get_by_test_id("routing-form")


def save(page) -> None:
    page.get_by_test_id("save-routing").click()
    page.wait_for_url(re.compile(r".*/console/catalogue/#aliases$"))


def first_call_where(gateway, is_it, **create) -> tuple[str, str]:
    """(deployment, x-tollway-route) of the first call `is_it` accepts; the gateway applies a saved change from
    its change feed within seconds."""
    deadline = time.monotonic() + 20
    while True:
        raw = gateway.sdk.chat.completions.with_raw_response.create(
            model="router", messages=[{"role": "user", "content": SQL}], **create
        )
        seen = raw.headers["x-tollway-deployment"], raw.headers["x-tollway-route"]
        if is_it(*seen) or time.monotonic() > deadline:
            return seen
        time.sleep(0.3)


def stored() -> dict:
    return ModelAlias.objects.get(name="router").routing


def test_an_admin_sets_a_frozen_bandit_and_the_next_calls_serve_its_best_mean(page, gateway):
    form = open_routing_form(page, gateway)
    form.get_by_label("Strategy").select_option("bandit")
    fieldset = form.get_by_test_id("bandit")
    fieldset.get_by_label("Quality weight").fill("1")
    fieldset.get_by_label("Cost weight").fill("0.5")
    fieldset.get_by_label("Latency weight").fill("0")
    fieldset.get_by_label("Exploration").fill("0")
    fieldset.get_by_label("Frozen: stop learning and exploring, serve the best so far").check()
    screenshot(page, "part-two-01-bandit")
    save(page)

    deployment, route = first_call_where(gateway, lambda _, route: route.startswith("bandit"))

    assert stored() == {
        "strategy": "bandit",
        "bandit": {"weights": {"quality": 1, "cost": 0.5, "latency": 0}, "exploration": 0, "frozen": True},
    }
    assert re.fullmatch(r"bandit \(frozen, mean 0\.\d{3}\)", route), route
    assert deployment in ("premium", "cheap")
    assert page.console_errors == []


def test_an_admin_splits_calls_with_an_experiment_and_a_user_sticks_to_their_arm(page, gateway):
    form = open_routing_form(page, gateway)
    fieldset = form.get_by_test_id("experiment")
    fieldset.get_by_label("Experiment name").fill("premium-or-cheap")
    fieldset.get_by_label("premium (%)").fill("60")
    fieldset.get_by_label("cheap (%)").fill("50")
    form.get_by_test_id("save-routing").click()

    error = page.locator("#field-arm_premium .field-error")
    assert error.inner_text() == "The arms add up to 110%: at most 100% of calls."
    screenshot(page, "part-two-02-arms-refused")
    assert stored() == {}

    page.get_by_test_id("experiment").get_by_label("premium (%)").fill("0")
    save(page)
    # Each user's point in [0, 100) is a hash of the experiment's name and their id: Bob's is 8 (the cheap arm's
    # 50%), Ann's 51 (the half left to the strategy: priority, premium first). Asked twice, each stays.
    bob = first_call_where(gateway, lambda _, route: "experiment" in route, user="bob")
    ann = [first_call_where(gateway, lambda *_: True, user="ann") for _ in range(2)]

    assert stored() == {
        "strategy": "priority",
        "experiment": {"name": "premium-or-cheap", "arms": {"premium": 0, "cheap": 50}},
    }
    assert bob == ("cheap", "priority (experiment premium-or-cheap: cheap)")
    assert first_call_where(gateway, lambda *_: True, user="bob") == bob
    assert ann == [("premium", "priority")] * 2
    assert page.console_errors == []


def test_an_admin_sets_the_learned_trade_off_and_sees_the_model_the_alias_routes_with(page, gateway):
    routing_services.train_router(alias=ModelAlias.objects.get(name="router"), lines=map(json.dumps, LINES))
    form = open_routing_form(page, gateway)
    form.get_by_label("Strategy").select_option("learned")
    form.get_by_label("Quality floor").fill("0.7")
    form.get_by_test_id("learned").get_by_label("Trade-off").fill("1")
    shown = page.get_by_test_id("learned-model").inner_text()
    screenshot(page, "part-two-03-learned")
    save(page)

    deployment, route = first_call_where(gateway, lambda _, route: route.startswith("learned (v1"))

    assert shown.startswith("v1, trained ") and "from 60 rows; predicts premium, cheap" in shown
    assert stored() == {"strategy": "learned", "min_quality": 0.7, "learned": {"trade_off": 1}}
    assert route.startswith("learned (v1, floor 0.7, trade-off 1: "), route
    assert (
        deployment == "cheap"
    )  # an SQL prompt: both meet the floor; premium predicted better, but at fifty times the cost
    assert page.console_errors == []
