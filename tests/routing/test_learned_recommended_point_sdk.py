"""Through the official openai SDK against a real gateway: a learned alias that sets neither `min_quality` nor
`learned.trade_off` routes with the operating point train_router's cross-validation stored with the version,
says so in x-tollway-route and the usage record's decision, and a caller's x-tollway-min-quality overrides it."""

import io
import json
import time

import openai
import pytest
from django.core.management import call_command

from portal import services
from routing.catalogue import import_catalogue
from routing.engine import learned
from routing.models import LearnedRouter
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
                    {"name": "premium", "provider": "canned", "model": "premium",
                     "input_per_1m": "10", "output_per_1m": "30"},
                    {"name": "cheap", "provider": "canned", "model": "cheap",
                     "input_per_1m": "0.2", "output_per_1m": "0.2"},
                ],
                # No min_quality and no learned.trade_off: the stored recommended point applies.
                "aliases": [{"name": "smart", "deployments": ["premium", "cheap"], "routing": {"strategy": "learned"}}],
            }
        )  # fmt: skip
        path = tmp_path / "train.jsonl"
        path.write_text("".join(json.dumps(line) + "\n" for line in LINES))
        call_command("train_router", "smart", str(path), stdout=io.StringIO())
        key = services.issue_api_key(team=TeamFactory(name="Checkout", tenant__name="Acme"), name="learned").secret
        with start_gateway() as gateway:
            yield openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)


def ask(sdk, prompt: str, **headers):
    raw = sdk.chat.completions.with_raw_response.create(
        model="smart", messages=[{"role": "user", "content": prompt}], extra_headers=headers
    )
    raw.parse()
    return raw


def recommended_label() -> str:
    model = learned.from_bytes(bytes(LearnedRouter.objects.get().weights))
    return model.cross_validation.recommended.label


def until_trained(sdk, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while "learned (v1," not in ask(sdk, SQL).headers["x-tollway-route"]:
        assert time.monotonic() < deadline, "the gateway never routed by v1"
        time.sleep(0.1)


def test_without_a_floor_or_trade_off_the_alias_routes_with_the_recommended_point(sdk):
    until_trained(sdk)
    label = recommended_label()

    sql, poem = ask(sdk, SQL), ask(sdk, POEM)
    (record,) = wait_for_usage(1, request_id=sql.headers["x-request-id"])

    assert sql.headers["x-tollway-deployment"] == "cheap"
    assert sql.headers["x-tollway-route"].startswith(f"learned (v1, recommended {label}: cheap 0.")
    assert poem.headers["x-tollway-deployment"] == "premium"
    assert poem.headers["x-tollway-route"].startswith(f"learned (v1, recommended {label}: premium 0.")
    assert record.decision["reason"].startswith(f"v1, recommended {label}: cheap 0.")


def test_the_caller_floor_overrides_the_recommended_point(sdk):
    until_trained(sdk)

    raw = ask(sdk, SQL, **{"x-tollway-min-quality": "0.99"})

    assert raw.headers["x-tollway-deployment"] == "premium"
    assert raw.headers["x-tollway-route"].startswith("learned (v1, floor 0.99 unmet: premium 0.")
