"""Calls whose model matched no catalogue alias are one "unknown model" entry, in the finance tables, the cost
chart stacked by model, the CSV, the model filter and the console's usage page. New records carry alias=""
(the /v1 contract); records stored before it carry whatever the client sent, so the rule reads the catalogue:
an alias is shown when the catalogue has it, or when the call was routed to a deployment."""

import csv
import io
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from billing.dashboards import model_names
from billing.models import UsageAggregate
from tests.billing.factories import UsageRecordFactory
from tests.billing.test_dashboards import FINANCE, FINANCE_DATA, OPERATOR_DATA, RANGE, traces, usage
from tests.factories import make_alias
from tests.portal.test_console_world import build_world

# What a client sent as `model`: 100,000 characters fit SQLite's column; PostgreSQL enforces the column's 150.
LONG_NAME = "x" * (100_000 if connection.vendor == "sqlite" else UsageAggregate._meta.get_field("alias").max_length)


@pytest.fixture
def world(db):
    world = build_world()
    make_alias("gpt-4o-mini")
    team = world.team
    usage(team, alias="gpt-4o-mini", deployment="main-gpt-4o-mini", cost_usd=Decimal("1.5"), requests=10)
    # Deleted from the catalogue since, but it was routed: still its own model.
    usage(team, alias="retired-model", deployment="old-deployment", cost_usd=Decimal("0.5"), requests=4)
    # Refused before routing: the new contract's "", and junk stored before it.
    for alias in ("", "nope", "(none)", LONG_NAME):
        usage(team, alias=alias, deployment="", provider="", cost_usd=Decimal(0), baseline_cost_usd=0, requests=1)
    return world


def models_csv(client) -> list[list[str]]:
    return list(csv.reader(io.StringIO(client.get("/console/dashboards/csv/models/", RANGE).content.decode())))


def test_top_models_list_unknown_aliases_once_as_unknown_model(client, world):
    client.force_login(world.users["finance"])

    page = client.get(FINANCE, RANGE).content.decode()
    table = page[page.index('data-testid="table-models"') :]

    assert table.count("unknown model") == 1
    assert "nope" not in page and "(none)" not in table and LONG_NAME not in page
    assert "gpt-4o-mini" in table and "retired-model" in table


def test_the_models_csv_has_one_unknown_model_row_with_every_unknown_call(client, world):
    client.force_login(world.users["finance"])

    rows = {row[0]: row for row in models_csv(client)[1:]}

    assert set(rows) == {"gpt-4o-mini", "retired-model", "unknown model"}
    assert rows["unknown model"][1] == "4"  # requests


def test_the_cost_chart_stacked_by_model_has_one_unknown_model_series(client, world):
    client.force_login(world.users["finance"])

    figure = client.get(FINANCE_DATA, RANGE | {"stack": "alias"}).json()["cost"]

    assert set(traces(figure)) == {"gpt-4o-mini", "retired-model", "unknown model"}


def test_the_model_filter_offers_unknown_model_once_and_filters_on_it(client, world):
    client.force_login(world.users["finance"])

    page = client.get(FINANCE, RANGE).content.decode()
    select = page[page.index('id="f-alias"') : page.index("</select>", page.index('id="f-alias"'))]
    assert select.count("<option") == 4  # all, two aliases, unknown model
    assert f'value="{model_names.UNKNOWN_MODEL_PARAM}"' in select and "nope" not in select

    unknown_only = client.get(FINANCE, RANGE | {"alias": model_names.UNKNOWN_MODEL_PARAM}).content.decode()
    assert 'data-testid="total-requests">4<' in unknown_only
    known_only = client.get(FINANCE, RANGE | {"alias": "gpt-4o-mini"}).content.decode()
    assert 'data-testid="total-requests">10<' in known_only
    # A junk name is no way to single out one junk call: it is not a model.
    assert 'data-testid="total-requests">0<' in client.get(FINANCE, RANGE | {"alias": "nope"}).content.decode()
    assert client.get(OPERATOR_DATA, RANGE | {"alias": model_names.UNKNOWN_MODEL_PARAM}).status_code == 200


def test_the_usage_page_groups_unknown_models_as_the_dashboards_do(client, world):
    team = world.team
    common = {"team": team, "tenant": team.tenant, "created_at": timezone.now()}
    UsageRecordFactory(**common, alias="gpt-4o-mini", cost_usd=Decimal("0.0000180000"))
    for alias in ("", "nope", LONG_NAME):
        UsageRecordFactory(**common, alias=alias, deployment="", cost_usd=Decimal(0))
    client.force_login(world.users["team_owner"])

    page = client.get("/console/usage/").content.decode()
    table = page[page.index('data-testid="usage-models"') :]

    assert table.count("unknown model") == 1
    assert "nope" not in table and LONG_NAME not in page
    assert "$0.000018" in table  # the dashboards' dollars rule, not $0.00
