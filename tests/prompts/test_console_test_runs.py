"""Test runs in the console: the page renders the messages server-side for the browser to send to /v1, and
keeps a run as an example of its version, priced by the server from the catalogue."""

import json
from decimal import Decimal

import pytest
from django.urls import reverse

from portal.models import AuditLogEntry, Membership
from portal.prompts import services
from portal.prompts.models import PromptExample
from tests.factories import DeploymentFactory, TeamFactory, make_alias
from tests.portal.factories import MembershipFactory
from tests.prompts.factories import make_prompt, team_owner

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner():
    return team_owner(TeamFactory(name="Checkout", tenant__name="Acme"))


@pytest.fixture
def prompt(owner):
    deployment = DeploymentFactory(name="mini-eu", input_per_1m=Decimal("0.15"), output_per_1m=Decimal("0.60"))
    alias = make_alias("mini", deployment).name
    template = make_prompt(team=owner.memberships.first().team, owner=owner, alias=alias)
    services.create_version(template, actor=owner, message="v1")
    return template


def post_json(client, url, body):
    return client.post(url, json.dumps(body), content_type="application/json")


def test_the_render_endpoint_types_the_values_and_fills_in_the_defaults(client, owner, prompt):
    client.force_login(owner)

    response = post_json(
        client,
        reverse("console:prompt-render", args=[prompt.pk]),
        {"version": "1", "values": {"ticker": "ACME", "words": "20"}},
    )

    body = response.json()
    assert response.status_code == 200
    assert body["version"] == 1 and body["alias"] == "mini"
    assert body["messages"][1] == {"role": "user", "content": "Summarise ACME for Q1 in 20 words."}
    assert body["variables"] == {"ticker": "ACME", "words": 20}


@pytest.mark.parametrize(
    ("values", "param"),
    [
        ({}, "variables.ticker"),
        ({"ticker": "A", "words": "many"}, "variables.words"),
        ({"ticker": "A", "quarter": "Q9"}, "variables.quarter"),
        ({"ticker": "A", "nope": "x"}, "variables.nope"),
    ],
    ids=["missing", "wrong-type", "not-in-enum", "unknown"],
)
def test_a_refused_value_answers_400_naming_the_variable(client, owner, prompt, values, param):
    client.force_login(owner)

    response = post_json(client, reverse("console:prompt-render", args=[prompt.pk]), {"version": 1, "values": values})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


@pytest.mark.parametrize(
    "body", [b"not json", b"[1, 2]", b'{"version": "x9"}', b'{"version": 1, "values": {"ticker": 5}}']
)
def test_a_malformed_render_request_answers_400_json(client, owner, prompt, body):
    client.force_login(owner)

    response = client.post(reverse("console:prompt-render", args=[prompt.pk]), body, content_type="application/json")

    assert response.status_code == 400 and "message" in response.json()["error"]


def test_the_draft_renders_too(client, owner, prompt):
    services.update_draft(prompt, actor=owner, messages=[{"role": "user", "content": "Hi {{name}}"}])
    client.force_login(owner)

    body = post_json(
        client, reverse("console:prompt-render", args=[prompt.pk]), {"version": "draft", "values": {"name": "Ada"}}
    ).json()

    assert body["version"] is None and body["messages"] == [{"role": "user", "content": "Hi Ada"}]


def test_a_kept_run_is_priced_by_the_server_from_the_token_counts(client, owner, prompt):
    client.force_login(owner)
    run = {
        "version": 1,
        "alias": "mini",
        "variables": {"ticker": "ACME"},
        "output": "ACME did well.",
        "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "cost_usd": 99},
        "deployment": "mini-eu",
        "latency_ms": 812.4,
    }

    response = post_json(client, reverse("console:prompt-examples", args=[prompt.pk]), run)

    assert response.status_code == 201
    example = PromptExample.objects.get()
    assert example.version.number == 1 and example.alias == "mini" and example.output == "ACME did well."
    assert example.cost_usd == Decimal("0.00045")  # 1000 x 0.15 + 500 x 0.60 per million, not the page's 99
    assert example.latency_ms == 812
    assert AuditLogEntry.objects.filter(action="prompt.example_kept").exists()
    page = client.get(reverse("console:prompt-test", args=[prompt.pk])).content.decode()
    assert f'data-testid="example-{example.pk}"' in page and "$0.00045" in page
    assert "{&quot;ticker&quot;:&quot;ACME&quot;}" in page  # the values as JSON, as the page sent them


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"version": "draft"}, "version"),
        ({"alias": "no-such-alias"}, "alias"),
        ({"output": 5}, "output"),
        ({"usage": {"prompt_tokens": -1, "completion_tokens": 1}}, "usage.prompt_tokens"),
        ({"latency_ms": "soon"}, "latency_ms"),
    ],
    ids=["draft", "alias", "output", "tokens", "latency"],
)
def test_a_run_that_cannot_be_kept_answers_400_and_keeps_nothing(client, owner, prompt, change, param):
    client.force_login(owner)
    run = {"version": 1, "alias": "mini", "variables": {}, "output": "x", **change}

    response = post_json(client, reverse("console:prompt-examples", args=[prompt.pk]), run)

    assert response.status_code == 400 and response.json()["error"]["param"] == param
    assert not PromptExample.objects.exists()


def test_a_member_runs_tests_but_keeps_no_example(client, prompt):
    member = MembershipFactory(team=prompt.team, tenant=prompt.tenant, role=Membership.Role.MEMBER).user
    client.force_login(member)

    page = client.get(reverse("console:prompt-test", args=[prompt.pk])).content.decode()
    rendered = post_json(
        client, reverse("console:prompt-render", args=[prompt.pk]), {"version": 1, "values": {"ticker": "A"}}
    )
    kept = post_json(
        client, reverse("console:prompt-examples", args=[prompt.pk]), {"version": 1, "alias": "mini", "output": "x"}
    )

    assert 'data-can-keep="false"' in page
    assert rendered.status_code == 200 and kept.status_code == 403
    assert not PromptExample.objects.exists()


def test_the_test_page_offers_the_aliases_and_passes_their_prices(client, owner, prompt):
    client.force_login(owner)

    response = client.get(reverse("console:prompt-test", args=[prompt.pk]))
    prices = response.context["prices"]

    assert response.context["aliases"][0] == "mini"
    assert prices["mini"] == {
        "deployments": {"mini-eu": {"input": "0.1500000000", "output": "0.6000000000", "cached": None}},
        "first": "mini-eu",
    }
    assert 'id="test-prices"' in response.content.decode()


@pytest.mark.parametrize("size", [1_500_000, 3_000_000], ids=["over-our-bound", "over-djangos-bound"])
def test_an_oversized_body_is_refused_with_400_not_an_error_page(client, owner, prompt, size):
    client.force_login(owner)
    body = json.dumps({"version": 1, "values": {"ticker": "x" * size}})

    response = client.post(reverse("console:prompt-render", args=[prompt.pk]), body, content_type="application/json")

    assert response.status_code == 400
