"""GET /api/v1/usage/summary: totals from the aggregates, scoped like the console, as JSON or CSV."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from billing import aggregation
from billing.aggregation import aggregate_pending
from portal.models import Membership
from tests.billing.factories import UsageRecordFactory
from tests.factories import TeamFactory, TenantFactory
from tests.portal.factories import MembershipFactory, UserFactory, token_client

pytestmark = pytest.mark.django_db

DAY = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
URL = "/api/v1/usage/summary"


@pytest.fixture(autouse=True)
def no_settle_delay(settings):
    settings.TOLLWAY_AGGREGATE_SETTLE_S = 0


@pytest.fixture
def world():
    """Acme (teams Checkout and Search) and Globex (team Billing), with usage on two days."""
    acme, globex = TenantFactory(name="Acme"), TenantFactory(name="Globex")
    checkout, search = TeamFactory(tenant=acme, name="Checkout"), TeamFactory(tenant=acme, name="Search")
    billing = TeamFactory(tenant=globex, name="Billing")

    def use(team, hour, cost, baseline, prompt, completion, latency_ms, alias="gpt-4o-mini"):
        UsageRecordFactory(
            tenant=team.tenant, team=team, tenant_name=team.tenant.name, team_name=team.name, alias=alias,
            created_at=hour, cost_usd=Decimal(cost), baseline_cost_usd=Decimal(baseline),
            prompt_tokens=prompt, completion_tokens=completion, latency_ms=latency_ms,
        )  # fmt: skip

    use(checkout, DAY + timedelta(hours=10), "0.10", "0.30", 10, 1, 100)
    use(checkout, DAY + timedelta(hours=10, minutes=5), "0.20", "0.40", 20, 2, 200)
    use(checkout, DAY + timedelta(days=1, hours=5), "0.0000000001", "0.0000000001", 5, 0, 300, alias="small")
    use(search, DAY + timedelta(hours=11), "1.00", "1.00", 100, 50, 50)
    use(billing, DAY + timedelta(hours=12), "5.00", "6.00", 1, 1, 10)
    aggregate_pending()
    return {"acme": acme, "globex": globex, "checkout": checkout, "search": search, "billing": billing}


def member(team, role=Membership.Role.MEMBER):
    return MembershipFactory(team=team, role=role).user


def tenant_wide(tenant, role):
    return MembershipFactory(team=None, tenant=tenant, role=role).user


def summary(user, **params):
    response = token_client(user).get(URL, params)
    assert response.status_code == 200, response.content
    return response.json()


def names(body) -> list[str]:
    return [row["team_name"] for row in body["rows"]]


def test_a_member_sees_only_their_teams_usage_with_exact_money(world):
    body = summary(member(world["checkout"]))

    (row,) = body["rows"]
    assert row == {
        "team_id": world["checkout"].pk,
        "team_name": "Checkout",
        "requests": 3,
        "prompt_tokens": 35,
        "completion_tokens": 3,
        "total_tokens": 38,
        "cost_usd": "0.3000000001",
        "baseline_cost_usd": "0.7000000001",
        "saved_usd": "0.4000000000",
        "latency_p50_ms": row["latency_p50_ms"],
        "latency_p95_ms": row["latency_p95_ms"],
    }
    # percentile_cont over 100, 200, 300 ms is 200 (p50) and 290 (p95); the summary estimates from histograms.
    assert row["latency_p50_ms"] == pytest.approx(200, rel=aggregation.HISTOGRAM_RELATIVE_ERROR)
    assert row["latency_p95_ms"] == pytest.approx(290, rel=aggregation.HISTOGRAM_RELATIVE_ERROR)
    assert body["group_by"] == "team" and body["columns"][:2] == ["team_id", "team_name"]


def test_team_owners_see_their_team_and_tenant_admins_and_finance_their_whole_tenant(world):
    assert names(summary(member(world["search"], Membership.Role.TEAM_OWNER))) == ["Search"]
    for role in (Membership.Role.TENANT_ADMIN, Membership.Role.FINANCE):
        body = summary(tenant_wide(world["acme"], role))
        assert names(body) == ["Search", "Checkout"]  # costliest first
        assert sum(Decimal(row["cost_usd"]) for row in body["rows"]) == Decimal("1.3000000001")


def test_platform_admins_see_every_tenant_and_can_pick_one(world):
    admin = UserFactory(is_superuser=True)

    assert names(summary(admin)) == ["Billing", "Search", "Checkout"]
    assert names(summary(admin, tenant=world["globex"].pk)) == ["Billing"]


def test_another_tenants_usage_is_never_visible(world):
    outsider = member(world["billing"])

    assert names(summary(outsider)) == ["Billing"]
    assert [(r["alias"], r["requests"]) for r in summary(outsider, group_by="alias")["rows"]] == [("gpt-4o-mini", 1)]
    response = token_client(outsider).get(URL, {"tenant": world["acme"].pk})
    assert response.status_code == 404
    assert token_client(outsider).get(URL, {"tenant": 999999}).status_code == 404


def test_usage_grouped_by_day_alias_and_key_over_an_explicit_range(world):
    admin = UserFactory(is_superuser=True)
    first_day, second_day = DAY.date().isoformat(), (DAY + timedelta(days=1)).date().isoformat()

    by_day = summary(admin, group_by="day")
    assert [(r["day"], r["requests"], r["cost_usd"]) for r in by_day["rows"]] == [
        (first_day, 4, "6.3000000000"),
        (second_day, 1, "0.0000000001"),
    ]
    # From 10:30 on the first day (rounded down to 10:00) to the end of it: the hours, not the whole day.
    since = f"{first_day}T10:30:00Z"
    only_first = summary(admin, group_by="alias", since=since, until=second_day)
    assert [(r["alias"], r["requests"]) for r in only_first["rows"]] == [("gpt-4o-mini", 4)]
    assert only_first["since"] == f"{first_day}T10:00:00Z" and only_first["until"] == f"{second_day}T00:00:00Z"
    later = summary(admin, group_by="alias", since=f"{first_day}T11:00:00Z")
    assert [(r["alias"], r["requests"]) for r in later["rows"]] == [("gpt-4o-mini", 2), ("small", 1)]
    by_key = summary(admin, group_by="key", tenant=world["globex"].pk)
    assert [(r["key_prefix"], r["requests"]) for r in by_key["rows"]] == [("sk-tw-abcdEFGH", 1)]


def test_the_summary_as_csv_has_the_same_columns_and_exact_money(world):
    response = token_client(member(world["checkout"])).get(URL, {"format": "csv", "group_by": "alias"})

    assert response.status_code == 200
    assert response["content-type"].startswith("text/csv")
    lines = response.content.decode().splitlines()
    assert lines[0] == (
        "alias,requests,prompt_tokens,completion_tokens,total_tokens,cost_usd,baseline_cost_usd,saved_usd,"
        "latency_p50_ms,latency_p95_ms"
    )
    assert lines[1].startswith("gpt-4o-mini,2,30,3,33,0.3000000000,0.7000000000,0.4000000000,")
    assert lines[2].startswith("small,1,5,0,5,0.0000000001,0.0000000001,0.0000000000,")
    assert len(lines) == 3


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"group_by": "colour"}, "group_by"),
        ({"since": "last tuesday"}, "since"),
        ({"until": "2026-13-45"}, "until"),
        ({"since": "2026-11-02", "until": "2026-11-01"}, "since"),
        ({"tenant": "acme"}, "tenant"),
        ({"format": "xlsx"}, "format"),
    ],
)
def test_bad_parameters_answer_400_naming_the_parameter(world, params, field):
    response = token_client(member(world["checkout"])).get(URL, params)

    assert response.status_code == 400
    assert response["content-type"].startswith("application/json")
    assert field in response.json()


def test_a_csv_request_with_bad_parameters_gets_its_error_as_json(world):
    response = token_client(member(world["checkout"])).get(URL, {"format": "csv", "group_by": "colour"})

    assert response.status_code == 400
    assert "group_by" in response.json()


def test_anonymous_calls_get_401_and_the_console_session_works():
    assert APIClient().get(URL).status_code == 401
    client = APIClient()
    client.force_login(UserFactory())
    assert client.get(URL).json()["rows"] == []


def test_on_the_embedded_default_the_summary_aggregates_what_is_pending_first(world, settings):
    user = member(world["search"])
    UsageRecordFactory(tenant=world["acme"], team=world["search"], created_at=DAY + timedelta(hours=13))
    settings.CELERY_TASK_ALWAYS_EAGER = False  # with a broker, beat aggregates: the summary only reads
    assert summary(user)["rows"][0]["requests"] == 1

    settings.CELERY_TASK_ALWAYS_EAGER = True
    assert summary(user)["rows"][0]["requests"] == 2
