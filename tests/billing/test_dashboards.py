"""Finance and operator dashboards, their data endpoints and CSV, the chargeback report and the request log.

Aggregate rows are created with known numbers and the figures, tables and CSV are checked against them. The
organisation is tests/portal/test_console_world.py's: Acme (teams Checkout and Search) and Globex (Rivals).
"""

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import factory
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.aggregation import HISTOGRAM_RELATIVE_ERROR, histogram_bin
from billing.dashboards import budgets as budget_reads
from billing.dashboards import scope as dashboard_scope
from billing.models import Budget, BudgetCounter, UsageAggregate
from billing.views import plotly_js
from core.values import Attempt, Decision, Skip
from tests.billing.factories import UsageRecordFactory
from tests.portal.test_console_world import build_world

FINANCE, FINANCE_DATA = "/console/dashboards/", "/console/dashboards/finance/data/"
OPERATOR, OPERATOR_DATA = "/console/dashboards/operations/", "/console/dashboards/operations/data/"
CHARGEBACK, REQUESTS = "/console/dashboards/chargeback/", "/console/requests/"
DAY = datetime(2026, 11, 3, tzinfo=UTC)
RANGE = {"from": "2026-11-01", "to": "2026-11-30"}


class AggregateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UsageAggregate

    granularity = "day"
    bucket_start = DAY
    status_class = "2xx"
    alias, deployment, provider = "gpt-4o-mini", "main-gpt-4o-mini", "openai"
    requests = 10
    cost_usd = Decimal("1.0000000000")
    baseline_cost_usd = Decimal("1.0000000000")


def usage(team, **fields) -> UsageAggregate:
    return AggregateFactory(
        tenant_id=team.tenant_id, tenant_name=team.tenant.name, team_id=team.pk, team_name=team.name, **fields
    )


@pytest.fixture
def world(db):
    return build_world()


def traces(figure: dict) -> dict[str, list]:
    return {trace.get("name"): trace["y"] for trace in figure["data"]}


# Scope of the data endpoints.


@pytest.mark.parametrize("role", ["member", "team_owner"])
def test_team_members_see_only_their_teams_cost(client, world, role):
    usage(world.team, cost_usd=Decimal("2.5"), baseline_cost_usd=Decimal("2.5"))
    usage(world.other_team, cost_usd=Decimal("7"), baseline_cost_usd=Decimal("7"))
    usage(world.rival_team, cost_usd=Decimal("11"), baseline_cost_usd=Decimal("11"))
    client.force_login(world.users[role])

    figure = client.get(FINANCE_DATA, RANGE).json()["cost"]

    assert traces(figure) == {"Checkout": [2.5]}


@pytest.mark.parametrize("role", ["finance", "tenant_admin"])
def test_finance_and_tenant_admins_see_every_team_of_their_tenant_and_nothing_else(client, world, role):
    usage(world.team, cost_usd=Decimal("2.5"))
    usage(world.other_team, cost_usd=Decimal("7"))
    usage(world.rival_team, cost_usd=Decimal("11"))
    client.force_login(world.users[role])

    figure = client.get(FINANCE_DATA, RANGE).json()["cost"]

    assert traces(figure) == {"Search": [7.0], "Checkout": [2.5]}


def test_platform_admins_see_every_tenant_and_can_narrow_to_one(client, world):
    usage(world.team, cost_usd=Decimal("2.5"))
    usage(world.rival_team, cost_usd=Decimal("11"))
    client.force_login(world.users["platform_admin"])

    everything = traces(client.get(FINANCE_DATA, RANGE).json()["cost"])
    globex = traces(client.get(FINANCE_DATA, RANGE | {"tenant": world.rival_team.tenant_id}).json()["cost"])

    assert everything == {"Globex / Rivals": [11.0], "Acme / Checkout": [2.5]}
    assert globex == {"Rivals": [11.0]}


@pytest.mark.parametrize("endpoint", [FINANCE_DATA, OPERATOR_DATA, FINANCE, OPERATOR, CHARGEBACK, REQUESTS])
@pytest.mark.parametrize("role", ["member", "finance", "tenant_admin"])
def test_another_tenants_team_id_is_a_404_on_every_dashboard_endpoint(client, world, endpoint, role):
    client.force_login(world.users[role])

    assert client.get(endpoint, {"team": world.rival_team.pk}).status_code == 404
    assert client.get(endpoint, {"team": 999_999}).status_code == 404
    assert client.get(endpoint, {"team": world.team.pk}).status_code == 200


def test_a_member_cannot_open_a_colleagues_team_or_the_whole_tenant(client, world):
    client.force_login(world.users["member"])

    assert client.get(FINANCE_DATA, {"team": world.other_team.pk}).status_code == 404
    assert client.get(FINANCE_DATA, {"tenant": world.tenant.pk}).status_code == 404


def test_finance_cannot_name_another_tenant(client, world):
    client.force_login(world.users["finance"])

    assert client.get(FINANCE_DATA, {"tenant": world.rival_team.tenant_id}).status_code == 404
    assert client.get(FINANCE_DATA, {"tenant": world.tenant.pk}).status_code == 200


def test_dashboards_need_a_signed_in_user(client, world):
    response = client.get(FINANCE_DATA)

    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# Figures from known aggregate rows.


def test_cost_over_time_stacks_by_model_or_provider_per_day(client, world):
    usage(world.team, alias="gpt-4o", provider="openai", cost_usd=Decimal("3"))
    usage(world.team, alias="claude", provider="anthropic", cost_usd=Decimal("1.25"))
    usage(world.team, alias="gpt-4o", provider="azure", cost_usd=Decimal("2"), bucket_start=DAY + timedelta(days=1))
    client.force_login(world.users["finance"])

    by_model = client.get(FINANCE_DATA, RANGE | {"stack": "alias"}).json()["cost"]
    by_provider = client.get(FINANCE_DATA, RANGE | {"stack": "provider"}).json()["cost"]

    assert by_model["data"][0]["x"] == ["2026-11-03T00:00:00+00:00", "2026-11-04T00:00:00+00:00"]
    assert traces(by_model) == {"gpt-4o": [3.0, 2.0], "claude": [1.25, 0.0]}
    assert traces(by_provider) == {"openai": [3.0, 0.0], "azure": [0.0, 2.0], "anthropic": [1.25, 0.0]}
    assert by_model["layout"]["barmode"] == "stack"


def test_savings_are_baseline_minus_cost_per_bucket(client, world):
    usage(world.team, cost_usd=Decimal("1"), baseline_cost_usd=Decimal("4"))
    usage(world.other_team, cost_usd=Decimal("2"), baseline_cost_usd=Decimal("2.5"))
    client.force_login(world.users["finance"])

    figure = client.get(FINANCE_DATA, RANGE).json()["savings"]

    assert figure["data"][0]["y"] == [3.5]


def test_ranges_up_to_two_days_read_hourly_rows_and_longer_ones_daily_rows(client, world):
    # The same spend, once as an hourly row and once rolled into the day: either is read, never both.
    usage(world.team, granularity="hour", bucket_start=DAY + timedelta(hours=13), cost_usd=Decimal("0.5"))
    usage(world.team, granularity="day", bucket_start=DAY, cost_usd=Decimal("0.5"))
    client.force_login(world.users["member"])

    hourly = client.get(FINANCE_DATA, {"from": "2026-11-03", "to": "2026-11-04"}).json()
    daily = client.get(FINANCE_DATA, RANGE).json()

    assert hourly["granularity"] == "hour" and hourly["cost"]["data"][0]["x"] == ["2026-11-03T13:00:00+00:00"]
    assert daily["granularity"] == "day" and daily["cost"]["data"][0]["x"] == ["2026-11-03T00:00:00+00:00"]
    assert traces(hourly["cost"]) == traces(daily["cost"]) == {"Checkout": [0.5]}


def test_the_finance_page_totals_top_teams_keys_and_cost_per_1k_requests(client, world):
    usage(world.team, api_key_id=world.key.pk, key_prefix=world.key.prefix, requests=400, cost_usd=Decimal("2"),
          baseline_cost_usd=Decimal("2"))  # fmt: skip
    usage(world.other_team, requests=100, cost_usd=Decimal("0.5"), baseline_cost_usd=Decimal("1.5"))
    client.force_login(world.users["finance"])

    response = client.get(FINANCE, RANGE)

    totals = response.context["totals"]
    assert (totals.requests, totals.cost_usd, totals.saved_usd) == (500, Decimal("2.5"), Decimal("1"))
    assert totals.cost_per_1k_requests == Decimal("5.000000")  # $2.50 for 500 requests
    teams = [(row["team_name"], row["cost_usd"], row["cost_per_1k_requests"]) for row in response.context["top_teams"]]
    assert teams == [("Checkout", Decimal("2"), Decimal("5.000000")), ("Search", Decimal("0.5"), Decimal("5.000000"))]
    assert [row["key_prefix"] for row in response.context["top_keys"]] == [world.key.prefix, ""]
    page = response.content.decode()
    assert 'data-testid="total-cost">$2.50<' in page and 'data-testid="cost-per-1k">$5.00<' in page
    assert "Rivals" not in page


def test_the_operator_figures_give_rates_per_second_and_shares_of_requests(client, world):
    usage(world.team, granularity="hour", bucket_start=DAY + timedelta(hours=1), requests=7200, errors=72,
          fallbacks=36, retries=720, prompt_tokens=360_000, completion_tokens=0, status_class="2xx")  # fmt: skip
    usage(world.team, granularity="hour", bucket_start=DAY + timedelta(hours=1), requests=1800, cache_hit=True,
          prompt_tokens=0, completion_tokens=0)  # fmt: skip
    client.force_login(world.users["member"])

    payload = client.get(OPERATOR_DATA, {"from": "2026-11-03", "to": "2026-11-03"}).json()

    throughput = traces(payload["throughput"])
    assert throughput == {"Requests/s": [2.5], "Tokens/s": [100.0]}  # 9,000 requests and 360,000 tokens in 3,600 s
    rates = traces(payload["rates"])
    assert rates["Error rate"] == [0.008] and rates["Fallback rate"] == [0.004]
    assert rates["Retries per request"] == [0.08] and rates["Cache hit rate"] == [0.2]


def test_errors_are_drawn_per_error_type_as_a_share_of_each_buckets_requests(client, world):
    usage(world.team, requests=90)
    usage(world.team, requests=6, errors=6, status_class="4xx", error_type="rate_limit_exceeded")
    usage(world.team, requests=2, errors=2, status_class="5xx", error_type="upstream_error")
    usage(world.other_team, requests=2, errors=2, status_class="5xx", error_type="upstream_error")
    client.force_login(world.users["finance"])

    figure = client.get(OPERATOR_DATA, RANGE).json()["errors"]

    shares = {trace["name"]: (trace["y"], trace["customdata"]) for trace in figure["data"]}
    assert shares == {"rate_limit_exceeded": ([0.06], [6]), "upstream_error": ([0.04], [4])}


def hist(**counts_by_ms) -> dict[str, int]:
    """A stored histogram: {"100": 3} puts three requests in the bin of 100 ms."""
    return {str(histogram_bin(float(ms))): n for ms, n in counts_by_ms.items()}


def test_latency_percentiles_per_deployment_come_from_merged_histograms(client, world):
    # Fast: 300 requests at ~100 ms one day, 100 at ~500 ms the next. Merged, p50 is ~100 ms and p95 ~500 ms;
    # no single row has those numbers, and a mean of the rows' p95s would not either.
    usage(world.team, deployment="fast", requests=300, latency_histogram=hist(**{"100": 300}),
          ttfb_histogram=hist(**{"20": 300}))  # fmt: skip
    usage(world.team, deployment="fast", requests=100, latency_histogram=hist(**{"500": 100}),
          ttfb_histogram=hist(**{"40": 100}), bucket_start=DAY + timedelta(days=1))  # fmt: skip
    usage(world.team, deployment="slow", requests=10, errors=10)  # failed before any upstream answered
    client.force_login(world.users["member"])

    response = client.get(OPERATOR, RANGE)
    latency = client.get(OPERATOR_DATA, RANGE).json()["latency"]

    fast, slow = response.context["deployments"]
    assert (fast["deployment"], fast["requests"], fast["error_rate"]) == ("fast", 400, 0.0)
    assert fast["latency_p50_ms"] == pytest.approx(100, rel=HISTOGRAM_RELATIVE_ERROR)
    assert fast["latency_p95_ms"] == pytest.approx(500, rel=HISTOGRAM_RELATIVE_ERROR)
    assert fast["ttfb_p95_ms"] == pytest.approx(40, rel=HISTOGRAM_RELATIVE_ERROR)
    assert slow["latency_p95_ms"] is None and slow["error_rate"] == 1.0
    day_one, day_two = traces(latency)["fast"]
    assert day_one == pytest.approx(100, rel=HISTOGRAM_RELATIVE_ERROR)
    assert day_two == pytest.approx(500, rel=HISTOGRAM_RELATIVE_ERROR)
    assert 'data-testid="circuit-breakers"' in response.content.decode()


def test_dashboards_read_aggregates_and_never_raw_usage_records(client, world):
    usage(world.team)
    UsageRecordFactory(tenant=world.tenant, team=world.team, created_at=DAY)
    client.force_login(world.users["finance"])

    with CaptureQueriesContext(connection) as queries:
        for url in (FINANCE, FINANCE_DATA, OPERATOR, OPERATOR_DATA, CHARGEBACK):
            assert client.get(url, RANGE).status_code == 200

    assert not [query["sql"] for query in queries if "billing_usagerecord" in query["sql"]]
    assert any("billing_usageaggregate" in query["sql"] for query in queries)


# Budgets.


def test_a_budget_forecasts_its_period_end_in_a_straight_line_from_its_counter():
    now = datetime(2026, 11, 11, tzinfo=UTC)  # a third of November gone
    budget = Budget(scope=Budget.Scope.TEAM, target_id=1, period=Budget.Period.MONTHLY, limit_usd=Decimal("250"))
    burn = budget_reads.BurnDown(
        budget=budget,
        unit="usd",
        limit=Decimal("250"),
        period_start=datetime(2026, 11, 1, tzinfo=UTC),
        period_end=datetime(2026, 12, 1, tzinfo=UTC),
        now=now,
        spent=Decimal("100"),
    )

    assert burn.forecast == Decimal("300")
    assert burn.runs_out_at == datetime(2026, 11, 26, tzinfo=UTC)  # $150 more at $10 a day
    assert round(burn.used_percent) == 40


def test_the_burn_down_reads_its_spend_and_its_curve_from_the_same_aggregates_never_the_counter(world):
    budget = Budget.objects.create(
        tenant=world.tenant, scope=Budget.Scope.TEAM, target_id=world.team.pk, period=Budget.Period.MONTHLY,
        limit_usd=Decimal("10"),
    )  # fmt: skip
    usage(world.team, granularity="hour", bucket_start=datetime(2026, 11, 1, tzinfo=UTC), cost_usd=Decimal("1"))
    usage(world.team, granularity="hour", bucket_start=datetime(2026, 11, 2, tzinfo=UTC), cost_usd=Decimal("2"))
    usage(world.other_team, granularity="hour", bucket_start=datetime(2026, 11, 2, tzinfo=UTC), cost_usd=Decimal("50"))
    now = datetime(2026, 11, 3, 12, tzinfo=UTC)

    before = budget_reads.burn_down(budget, now=now)
    BudgetCounter.objects.create(budget=budget, period_start=datetime(2026, 11, 1, tzinfo=UTC), spent_usd=4)
    after = budget_reads.burn_down(budget, now=now)

    assert before.cumulative == [0, 1, 3] and before.spent == 3
    assert after.spent == 3 and after.cumulative[-1] == 3


def test_members_see_their_teams_budgets_but_not_the_tenants(client, world):
    team_budget = Budget.objects.create(
        tenant=world.tenant, scope="team", target_id=world.team.pk, period="daily", limit_usd=1
    )
    tenant_budget = Budget.objects.create(
        tenant=world.tenant, scope="tenant", target_id=world.tenant.pk, period="monthly", limit_usd=9
    )
    Budget.objects.create(tenant=world.tenant, scope="team", target_id=world.other_team.pk, period="daily", limit_usd=1)
    Budget.objects.create(
        tenant=world.rival_team.tenant, scope="team", target_id=world.rival_team.pk, period="daily", limit_usd=1
    )

    def seen(role):
        client.force_login(world.users[role])
        return set(client.get(FINANCE_DATA).json()["budgets"])

    assert seen("member") == {str(team_budget.pk)}
    assert seen("finance") == {str(team_budget.pk), str(tenant_budget.pk), str(team_budget.pk + 2)}
    assert seen("other_tenant_admin") == {str(team_budget.pk + 3)}


# CSV and chargeback.


def rows_of(response) -> list[list[str]]:
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_every_table_exports_as_csv_with_exact_dollars(client, world):
    usage(world.team, api_key_id=world.key.pk, key_prefix=world.key.prefix, requests=3, prompt_tokens=30,
          completion_tokens=12, cost_usd=Decimal("0.0000450000"), baseline_cost_usd=Decimal("0.0001"))  # fmt: skip
    client.force_login(world.users["finance"])

    teams = rows_of(client.get("/console/dashboards/csv/teams/", RANGE))
    keys = rows_of(client.get("/console/dashboards/csv/keys/", RANGE))

    assert teams[0][:6] == ["Tenant", "Team", "Requests", "Input tokens", "Output tokens", "Cost (USD)"]
    assert teams[1] == ["Acme", "Checkout", "3", "30", "12", "0.0000450000", "0.0001000000", "0.0000550000",
                        "0.0150000000"]  # fmt: skip
    assert keys[1][:3] == [world.key.prefix, "Acme", "Checkout"]
    for table in ("models", "budgets", "deployments", "chargeback"):
        assert client.get(f"/console/dashboards/csv/{table}/", RANGE).status_code == 200
    assert client.get("/console/dashboards/csv/passwords/").status_code == 404


def test_the_monthly_chargeback_sums_whole_months_per_team_with_a_total(client, world):
    usage(world.team, bucket_start=datetime(2026, 11, 1, tzinfo=UTC), requests=10, cost_usd=Decimal("1.10"))
    usage(world.team, bucket_start=datetime(2026, 11, 30, tzinfo=UTC), requests=5, cost_usd=Decimal("0.40"))
    usage(world.other_team, bucket_start=datetime(2026, 11, 15, tzinfo=UTC), requests=1, cost_usd=Decimal("3"))
    usage(world.team, bucket_start=datetime(2026, 12, 1, tzinfo=UTC), cost_usd=Decimal("100"))  # next month
    usage(world.team, granularity="hour", bucket_start=datetime(2026, 11, 5, tzinfo=UTC), cost_usd=Decimal("100"))
    usage(world.rival_team, bucket_start=datetime(2026, 11, 15, tzinfo=UTC), cost_usd=Decimal("100"))
    client.force_login(world.users["finance"])

    page = client.get(CHARGEBACK, {"month": "2026-11"})
    exported = rows_of(client.get("/console/dashboards/csv/chargeback/", {"month": "2026-11"}))

    assert [(row["team_name"], row["requests"], row["cost_usd"]) for row in page.context["rows"]] == [
        ("Search", 1, Decimal("3")),
        ("Checkout", 15, Decimal("1.5")),
    ]
    assert page.context["report"].total.cost_usd == Decimal("4.5")
    assert 'data-testid="chargeback-total"><strong>$4.50<' in page.content.decode()
    assert [row[2] for row in exported[1:]] == ["Search", "Checkout", "Total"]
    assert exported[-1][0] == "2026-11" and exported[-1][6] == "4.5000000000"


# The request log.


def test_the_request_log_finds_a_teams_records_and_hides_other_tenants(client, world):
    mine = UsageRecordFactory(tenant=world.tenant, team=world.team, created_at=timezone.now(), status=429)
    UsageRecordFactory(tenant=world.tenant, team=world.team, created_at=timezone.now(), status=200)
    colleague = UsageRecordFactory(tenant=world.tenant, team=world.other_team, created_at=timezone.now())
    rival = UsageRecordFactory(tenant=world.rival_team.tenant, team=world.rival_team, created_at=timezone.now())
    client.force_login(world.users["member"])

    found = client.get(REQUESTS, {"status": "4xx"}).context["page"].records
    everything = client.get(REQUESTS).context["page"].records

    assert [record.pk for record in found] == [mine.pk]
    assert colleague.pk not in {r.pk for r in everything} and rival.pk not in {r.pk for r in everything}
    assert client.get(f"{REQUESTS}{rival.request_id}/").status_code == 404
    assert client.get(f"{REQUESTS}{colleague.request_id}/").status_code == 404
    assert client.get(f"{REQUESTS}req_guessed/").status_code == 404


def test_a_request_shows_its_routing_timings_and_cost_and_says_bodies_are_not_kept(client, world):
    record = UsageRecordFactory(
        tenant=world.tenant, team=world.team, created_at=timezone.now(), attempts=3, deployment="backup-gpt",
        provider="azure", latency_ms=840.0, upstream_latency_ms=800.0, cost_usd=Decimal("0.0123"),
    )  # fmt: skip
    client.force_login(world.users["finance"])

    page = client.get(f"{REQUESTS}{record.request_id}/").content.decode()

    assert "<code>backup-gpt</code> at azure" in page and "2 retries or fallbacks" in page
    assert "40.0 ms (latency − upstream)" in page and 'data-testid="request-cost">$0.0123<' in page
    assert "keeps no prompt or response bodies" in page


def test_a_request_shows_the_routing_decision_skips_and_attempts(client, world):
    decision = Decision(alias="smart", strategy="cheapest", reason="est. $0.0001", candidates=["mid", "premium"])
    decision.skipped.append(Skip("cheap", "quality", "quality 0.5 below 0.7"))
    decision.attempts += [
        Attempt("mid", "smart", 503, "server_error", 12.5),
        Attempt("premium", "smart", 200, "", 80.0),
    ]
    record = UsageRecordFactory(
        tenant=world.tenant, team=world.team, created_at=timezone.now(), strategy="cheapest",
        decision=decision.to_record(), attempts=2,
    )  # fmt: skip
    client.force_login(world.users["finance"])

    page = client.get(f"{REQUESTS}{record.request_id}/").content.decode()

    assert '<code>cheapest</code> <span class="muted small">est. $0.0001</span>' in page
    assert "<code>cheap</code></td><td>quality" in page and "quality 0.5 below 0.7" in page
    assert "<code>server_error</code> (503)" in page and "80.0 ms" in page


def test_a_record_without_a_decision_says_so(client, world):
    record = UsageRecordFactory(tenant=world.tenant, team=world.team, created_at=timezone.now())
    client.force_login(world.users["finance"])

    page = client.get(f"{REQUESTS}{record.request_id}/").content.decode()

    assert "This record has no routing decision" in page


def test_the_request_log_pages_by_keyset_from_newest_to_oldest(client, world):
    start = timezone.now() - timedelta(hours=1)
    records = [
        UsageRecordFactory(tenant=world.tenant, team=world.team, created_at=start + timedelta(seconds=i))
        for i in range(55)
    ]
    client.force_login(world.users["member"])

    first = client.get(REQUESTS)
    second = client.get(f"{REQUESTS}?{first.context['next_query']}")

    assert [r.pk for r in first.context["page"].records] == [r.pk for r in reversed(records)][:50]
    assert [r.pk for r in second.context["page"].records] == [r.pk for r in reversed(records)][50:]
    assert second.context["next_query"] == ""


# Pages and assets.


def test_a_user_without_teams_gets_empty_states_not_errors(client, db):
    from tests.portal.factories import UserFactory

    client.force_login(UserFactory())

    for url in (FINANCE, OPERATOR, CHARGEBACK, REQUESTS):
        response = client.get(url)
        assert response.status_code == 200
    assert dashboard_scope.scope_of(response.wsgi_request.user).is_empty
    assert 'data-testid="no-scope"' in client.get(FINANCE).content.decode()


def test_plotly_js_is_served_from_the_installed_package_and_cached_for_good(client):
    response = client.get(f"/console/dashboards/plotly-{plotly_js.VERSION}.min.js")

    assert response.status_code == 200 and response.content.startswith(b"/**\n* plotly.js v")
    assert "immutable" in response["Cache-Control"]
    assert client.get("/console/dashboards/plotly-0.0.1.min.js").status_code == 404
