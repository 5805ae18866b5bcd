"""The learned strategy through the official openai SDK against a real gateway: untrained, the alias routes in
priority order and says so; once `train_router` has stored a model the running gateway picks it up, sends each
prompt to the cheapest deployment predicted to meet the floor (the alias's min_quality, raised per call by
x-tollway-min-quality), and x-tollway-route and the usage record's decision say which version chose what."""

import json
import time

import openai
import pytest
from django.core.management import call_command

from portal import services
from routing.catalogue import import_catalogue
from tests.gateway import start_gateway, wait_for_usage
from tests.portal.factories import TeamFactory
from tests.upstreams.canned_server import CannedUpstream
from tests.upstreams.server import LoopbackServer

pytestmark = pytest.mark.django_db(transaction=True)

SQL = "Fix this SQL: select the names of users older than 30"
POEM = "Write a sonnet about autumn leaves and the moon"
LINES = [
    {"prompt": f"Fix this SQL query {n}: select the orders of customer {n}", "scores": {"cheap": 1, "premium": 1}}
    for n in range(30)
] + [{"prompt": f"Write a sonnet about the sea, poem {n}", "scores": {"cheap": 0, "premium": 1}} for n in range(30)]


@pytest.fixture
def sdk(tmp_path):
    canned = CannedUpstream()
    with LoopbackServer(canned) as upstream:
        canned.answer("cheap", "cheap answer")
        canned.answer("premium", "premium answer")
        import_catalogue(
            data={
                "providers": [{"name": "canned", "kind": "openai-compatible", "base_url": f"{upstream.url}/v1"}],
                "deployments": [
                    # Static scores, for the priority order an untrained alias falls back to.
                    {"name": "premium", "provider": "canned", "model": "premium", "quality": 0.9,
                     "input_per_1m": "10", "output_per_1m": "30"},
                    {"name": "cheap", "provider": "canned", "model": "cheap", "quality": 0.6,
                     "input_per_1m": "0.2", "output_per_1m": "0.2"},
                ],
                "aliases": [
                    {"name": "smart", "deployments": ["premium", "cheap"],
                     "routing": {"strategy": "learned", "min_quality": 0.7}},
                ],
            }
        )  # fmt: skip
        key = services.issue_api_key(team=TeamFactory(name="Checkout", tenant__name="Acme"), name="learned").secret
        with start_gateway() as gateway:
            yield openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)


def ask(sdk, prompt: str, **headers) -> tuple[str, str]:
    """(the deployment that answered, x-tollway-route)."""
    raw = sdk.chat.completions.with_raw_response.create(
        model="smart", messages=[{"role": "user", "content": prompt}], extra_headers=headers
    )
    raw.parse()
    return raw.headers["x-tollway-deployment"], raw.headers["x-tollway-route"]


def train(tmp_path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in LINES))
    call_command("train_router", "smart", str(path))


def until_routed_by(sdk, version: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while f"learned ({version}," not in ask(sdk, SQL)[1]:
        assert time.monotonic() < deadline, f"the gateway never routed by {version}"
        time.sleep(0.1)


def test_an_untrained_alias_routes_in_priority_order_and_says_so(sdk):
    deployment, route = ask(sdk, SQL)

    assert deployment == "premium"
    # Untrained, the alias's floor applies to the static quality scores, as for any priority alias.
    assert route == "learned (no trained model yet: priority order); 1 skipped: quality"


def test_once_trained_the_running_gateway_routes_by_predicted_quality_under_the_alias_floor(sdk, tmp_path):
    train(tmp_path)
    until_routed_by(sdk, "v1")

    sql_deployment, sql_route = ask(sdk, SQL)
    poem_deployment, poem_route = ask(sdk, POEM)

    assert sql_deployment == "cheap"
    assert sql_route.startswith("learned (v1, floor 0.7: cheap 0.")
    assert poem_deployment == "premium"
    assert poem_route.startswith("learned (v1, floor 0.7: premium 0.")
    # Its static 0.6 is below the floor, but the prediction is what counts now: not skipped.
    assert "skipped" not in sql_route


def test_the_header_raises_the_floor_for_one_call(sdk, tmp_path):
    train(tmp_path)
    until_routed_by(sdk, "v1")

    deployment, route = ask(sdk, SQL, **{"x-tollway-min-quality": "0.99"})

    assert deployment == "premium"
    assert route.startswith("learned (v1, floor 0.99 unmet: premium 0.") and route.endswith("(best predicted))")


def test_a_new_version_replaces_the_old_one_and_the_decision_is_recorded(sdk, tmp_path):
    train(tmp_path)
    until_routed_by(sdk, "v1")
    train(tmp_path)
    until_routed_by(sdk, "v2")

    raw = sdk.chat.completions.with_raw_response.create(model="smart", messages=[{"role": "user", "content": SQL}])
    (record,) = wait_for_usage(1, request_id=raw.headers["x-request-id"])

    assert record.decision["strategy"] == "learned"
    assert record.decision["reason"].startswith("v2, floor 0.7: cheap 0.")
    assert record.decision["candidates"] == ["cheap", "premium"]
    assert set(record.decision["estimates"]) == {"cheap", "premium"}
