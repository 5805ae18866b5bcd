"""Strategies and constraints chosen in the catalogue YAML, through the official openai SDK: every answer says how
it was routed (x-tollway-route), the usage record keeps the whole decision, and /api/v1/routing/explain says the
same without calling anyone."""

import io
import re
import time

import openai
import orjson
import pytest

from billing.export import write_jsonl
from billing.models import UsageRecord
from core.values import RoutingPolicy
from portal import services
from portal.services import set_team_residency
from routing.catalogue import import_catalogue
from routing.engine.router import Engine
from tests.gateway import start_gateway, wait_for_usage
from tests.portal.factories import TeamFactory, UserFactory, token_client

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = [{"role": "user", "content": "Hi"}]


def deployment(name: str, *, price_in: str, price_out: str, **facts) -> dict:
    # Every deployment answers on the test upstream's gpt-4o-mini: which one answered is in the headers.
    return {
        "name": name,
        "provider": "test-upstream",
        "model": "gpt-4o-mini",
        "input_per_1m": price_in,
        "output_per_1m": price_out,
        **facts,
    }


@pytest.fixture
def routed_catalogue(openai_upstream):
    import_catalogue(
        data={
            "providers": [
                {
                    "name": "test-upstream",
                    "kind": "openai",
                    "base_url": f"{openai_upstream.url}/v1",
                    "api_key": "sk-upstream-test",
                }
            ],
            "deployments": [
                deployment("cheap-llama", price_in="0.1", price_out="0.2", quality=0.5, region="us"),
                deployment("mid-mixtral", price_in="1", price_out="2", quality=0.8, region="eu", context_window=64),
                deployment("premium-gpt4", price_in="10", price_out="30", quality=0.95, region="eu"),
                deployment("dead", price_in="0.01", price_out="0.01", model="fail-500"),
                deployment("chat-only", price_in="0.05", price_out="0.05", capabilities=["chat"]),
                deployment("quota-2", price_in="0.01", price_out="0.01", rpm_limit=2),
            ],
            "aliases": [
                {
                    "name": "smart",
                    "deployments": ["premium-gpt4", "mid-mixtral", "cheap-llama"],
                    "routing": {"strategy": "cheapest", "min_quality": 0.7},
                },
                {"name": "flaky", "deployments": ["dead"], "routing": {"fallbacks": ["smart"]}},
                {
                    "name": "turns",
                    "deployments": ["cheap-llama", "premium-gpt4"],
                    "routing": {"strategy": "round-robin"},
                },
                {
                    "name": "weights",
                    "deployments": ["cheap-llama", "premium-gpt4"],
                    "routing": {"strategy": "weighted", "weights": {"cheap-llama": 0, "premium-gpt4": 1}},
                },
                {
                    "name": "fastest",
                    "deployments": ["cheap-llama", "premium-gpt4"],
                    "routing": {"strategy": "lowest-latency"},
                },
                {
                    "name": "idlest",
                    "deployments": ["cheap-llama", "premium-gpt4"],
                    "routing": {"strategy": "least-busy"},
                },
                {"name": "quota", "deployments": ["quota-2", "premium-gpt4"]},
                {
                    "name": "anywhere",
                    "deployments": ["mid-mixtral", "cheap-llama"],
                    "routing": {"strategy": "cheapest"},
                },
                {
                    "name": "tooling",
                    "deployments": ["chat-only", "premium-gpt4"],
                    "routing": {"strategy": "cheapest"},
                },
            ],
        }
    )


@pytest.fixture
def team(routed_catalogue):
    return TeamFactory(name="Checkout", tenant__name="Acme")


@pytest.fixture
def key(team):
    return services.issue_api_key(team=team, name="routing test").secret


@pytest.fixture
def sdk(key):
    with start_gateway() as gateway:
        yield openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)


def test_cheapest_with_a_quality_floor_answers_from_the_cheapest_good_enough_deployment_and_says_why(sdk):
    response = sdk.chat.completions.with_raw_response.create(model="smart", messages=CHAT)

    assert response.headers["x-tollway-deployment"] == "mid-mixtral"
    route = response.headers["x-tollway-route"]
    assert route.startswith("cheapest (est. $") and route.endswith("; 1 skipped: quality")
    [record] = wait_for_usage(1)
    assert record.strategy == "cheapest"
    assert record.decision["candidates"] == ["mid-mixtral", "premium-gpt4"]
    assert record.decision["skipped"] == [
        {"deployment": "cheap-llama", "reason": "quality", "detail": "quality 0.5 below 0.7"}
    ]
    assert [(a["deployment"], a["status"]) for a in record.decision["attempts"]] == [("mid-mixtral", 200)]


def test_the_caller_raises_the_floor_with_a_header_and_a_bad_floor_is_a_400(sdk):
    raised = sdk.chat.completions.with_raw_response.create(
        model="smart", messages=CHAT, extra_headers={"x-tollway-min-quality": "0.9"}
    )
    assert raised.headers["x-tollway-deployment"] == "premium-gpt4"
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model="smart", messages=CHAT, extra_headers={"x-tollway-min-quality": "high"})
    assert refused.value.body["param"] == "x-tollway-min-quality"
    assert len(wait_for_usage(2)) == 2  # the refused call is recorded too


def test_a_prompt_too_long_for_a_window_skips_that_deployment(sdk):
    long_prompt = [{"role": "user", "content": "word " * 200}]
    response = sdk.chat.completions.with_raw_response.create(model="smart", messages=long_prompt)

    assert response.headers["x-tollway-deployment"] == "premium-gpt4"
    skipped = response.headers["x-tollway-route"].split("; 2 skipped: ")[1]
    assert set(skipped.split(", ")) == {"quality", "context"}


def test_a_request_with_tools_skips_a_deployment_that_says_it_has_none(sdk):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    response = sdk.chat.completions.with_raw_response.create(model="tooling", messages=CHAT, tools=tools)

    assert response.headers["x-tollway-deployment"] == "premium-gpt4"
    assert response.headers["x-tollway-route"].endswith("1 skipped: capability")


def test_a_failing_alias_falls_back_to_another_alias(sdk):
    response = sdk.chat.completions.with_raw_response.create(model="flaky", messages=CHAT)

    assert response.headers["x-tollway-deployment"] == "mid-mixtral"
    assert response.headers["x-tollway-attempts"] == "2"
    assert "fallback: smart" in response.headers["x-tollway-route"]
    [record] = wait_for_usage(1)
    assert [(a["deployment"], a["alias"]) for a in record.decision["attempts"]] == [
        ("dead", "flaky"),
        ("mid-mixtral", "smart"),
    ]
    assert record.cost_usd > 0  # billed once: the answering attempt's tokens at mid-mixtral's price


def test_a_team_kept_in_the_eu_stops_reaching_a_us_deployment(team, key):
    with start_gateway() as gateway:
        sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
        before = sdk.chat.completions.with_raw_response.create(model="anywhere", messages=CHAT)
        set_team_residency(team=team, changed_by=UserFactory(is_superuser=True), allowed_regions=["eu"])
        deadline = time.monotonic() + 10  # the change reaches the gateway through the change feed
        while (after := sdk.chat.completions.with_raw_response.create(model="anywhere", messages=CHAT)).headers[
            "x-tollway-deployment"
        ] != "mid-mixtral":
            assert time.monotonic() < deadline, "the team's residency never reached the gateway"
            time.sleep(0.1)

    assert before.headers["x-tollway-deployment"] == "cheap-llama"  # the cheapest, while any region would do
    assert after.headers["x-tollway-route"].endswith("1 skipped: region")
    record = UsageRecord.objects.get(request_id=after.headers["x-request-id"])
    assert record.decision["skipped"] == [
        {"deployment": "cheap-llama", "reason": "region", "detail": "region us not in eu"}
    ]


def test_explain_says_what_the_real_call_then_does(sdk, team):
    admin = token_client(UserFactory(is_superuser=True))
    body = {"messages": CHAT}

    explained = admin.post("/api/v1/routing/explain", {"alias": "smart", "team": team.pk, "body": body}, format="json")
    response = sdk.chat.completions.with_raw_response.create(model="smart", messages=CHAT)

    assert explained.status_code == 200
    explanation = explained.json()
    [record] = wait_for_usage(1)
    assert explanation["candidates"] == record.decision["candidates"]
    assert explanation["skipped"] == record.decision["skipped"]
    assert explanation["route"] == response.headers["x-tollway-route"]
    assert explanation["attempts"] == []  # nothing was called


def test_explain_is_refused_for_another_tenants_team_and_for_an_unknown_alias(routed_catalogue, team):
    outsider = token_client(UserFactory())
    admin = token_client(UserFactory(is_superuser=True))

    hidden = outsider.post("/api/v1/routing/explain", {"alias": "smart", "team": team.pk}, format="json")
    unknown = admin.post("/api/v1/routing/explain", {"alias": "nope", "team": team.pk}, format="json")

    assert hidden.status_code == 404 and hidden["content-type"] == "application/json"
    assert unknown.status_code == 404 and "nope" in unknown.json()["detail"]


def test_jsonl_export_carries_the_strategy_and_the_decision(sdk):
    sdk.chat.completions.create(model="smart", messages=CHAT)
    wait_for_usage(1)

    out = io.StringIO()
    write_jsonl(UsageRecord.objects.all(), out)
    [line] = [orjson.loads(text) for text in out.getvalue().splitlines()]

    assert line["strategy"] == "cheapest"
    assert line["decision"]["candidates"][0] == "mid-mixtral"


def test_a_call_nothing_can_take_is_refused_and_says_why_in_its_headers(sdk):
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model="smart", messages=CHAT, extra_headers={"x-tollway-min-quality": "1"})

    headers = refused.value.response.headers
    assert refused.value.body["code"] == "no_eligible_deployment"
    assert headers["x-tollway-route"].endswith("3 skipped: quality") and headers["x-tollway-attempts"] == "0"
    [record] = wait_for_usage(1)
    assert (record.status, record.strategy, len(record.decision["skipped"])) == (400, "cheapest", 3)


def test_the_console_catalogue_shows_each_deployments_breaker(routed_catalogue, client):
    from routing.proxy import pipeline  # the engine of this process, which the console reads

    client.force_login(UserFactory())
    board = pipeline.engine().breakers
    closed = client.get("/console/catalogue/").content.decode()
    policy = RoutingPolicy().breaker
    for _ in range(policy.consecutive_failures):
        board.record("premium-gpt4", policy, ok=False)
    opened = client.get("/console/catalogue/").content.decode()

    def breaker_of(page: str, deployment: str) -> str:
        [state] = re.findall(rf'data-testid="breaker-{deployment}">breaker <span class="[^"]*">([a-z-]+)</span>', page)
        return state

    pipeline.install_engine(Engine())  # no open breaker left for the next test
    assert breaker_of(closed, "premium-gpt4") == "closed"
    assert (breaker_of(opened, "premium-gpt4"), breaker_of(opened, "mid-mixtral")) == ("open", "closed")


def deployments_answering(sdk, model: str, calls: int) -> list[str]:
    return [
        sdk.chat.completions.with_raw_response.create(model=model, messages=CHAT).headers["x-tollway-deployment"]
        for _ in range(calls)
    ]


def test_round_robin_takes_turns(sdk):
    assert deployments_answering(sdk, "turns", 4) == ["cheap-llama", "premium-gpt4"] * 2


def test_weighted_never_sends_a_zero_weight_deployment_a_call_it_can_answer_elsewhere(sdk):
    assert set(deployments_answering(sdk, "weights", 10)) == {"premium-gpt4"}


def test_least_busy_with_nothing_in_flight_keeps_the_listed_order(sdk):
    response = sdk.chat.completions.with_raw_response.create(model="idlest", messages=CHAT)
    assert response.headers["x-tollway-deployment"] == "cheap-llama"
    assert response.headers["x-tollway-route"] == "least-busy (0 in flight)"


def test_lowest_latency_goes_to_the_deployment_measured_fastest(sdk):
    from routing.proxy import pipeline  # this process's engine: the in-process gateway's

    latency = pipeline.engine().latency
    for _ in range(5):
        latency.observe("cheap-llama", latency_ms=3000)
        latency.observe("premium-gpt4", latency_ms=20)
    response = sdk.chat.completions.with_raw_response.create(model="fastest", messages=CHAT)

    assert response.headers["x-tollway-deployment"] == "premium-gpt4"
    assert response.headers["x-tollway-route"].startswith("lowest-latency (ewma ")


def test_a_deployment_at_its_provider_rpm_quota_is_skipped_for_the_rest_of_the_minute(sdk):
    # Quotas count per clock minute: start well inside one, so the three calls share it.
    if time.time() % 60 > 55:
        time.sleep(61 - time.time() % 60)
    answered = deployments_answering(sdk, "quota", 3)

    assert answered == ["quota-2", "quota-2", "premium-gpt4"]
    *_, record = wait_for_usage(3)
    assert [(s["deployment"], s["reason"]) for s in record.decision["skipped"]] == [("quota-2", "rpm-limit")]
