"""Prompt calls in billing: usage rows carry the prompt's slug and version into records, hourly and daily
aggregates, export_usage, the usage summary (`group_by=prompt`, `group_by=prompt_version`) and the dashboards."""

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from billing.aggregation import aggregate_pending
from billing.models import UsageAggregate, UsageRecord
from billing.services import store_usage_rows
from billing.usage import UsageEvent
from portal.models import Membership
from tests.billing.factories import UsageRecordFactory
from tests.factories import TeamFactory, principal
from tests.portal.factories import MembershipFactory, token_client

pytestmark = pytest.mark.django_db

DAY = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)


@pytest.fixture(autouse=True)
def no_settle_delay(settings):
    settings.TOLLWAY_AGGREGATE_SETTLE_S = 0


@pytest.fixture
def team():
    return TeamFactory(name="Research", tenant__name="Acme")


def use(team, *, prompt="", version=None, cost="0.10", hours=10):
    return UsageRecordFactory(
        tenant=team.tenant,
        team=team,
        tenant_name=team.tenant.name,
        team_name=team.name,
        endpoint="prompts.completions" if prompt else "chat.completions",
        prompt=prompt,
        prompt_version=version,
        created_at=DAY + timedelta(hours=hours),
        cost_usd=Decimal(cost),
        baseline_cost_usd=Decimal(cost),
    )


def test_a_usage_event_of_a_prompt_call_is_stored_with_slug_and_version_and_in_its_decision(team):
    event = UsageEvent.begin(
        principal=principal(tenant_id=team.tenant_id, team_id=team.pk, key_id=None),
        endpoint="prompts.completions",
        request_id="req_prompt",
    )
    event.prompt, event.prompt_version, event.decision = "ticker-summary", 4, {"strategy": "priority"}
    event.close(status=200)

    store_usage_rows(rows=[event.to_row()])

    record = UsageRecord.objects.get(request_id="req_prompt")
    assert (record.prompt, record.prompt_version) == ("ticker-summary", 4)
    assert record.decision == {"strategy": "priority", "prompt": "ticker-summary@4"}


def test_aggregates_keep_each_version_apart_and_the_summary_groups_by_prompt_and_by_version(team):
    use(team, prompt="ticker", version=1, cost="0.10")
    use(team, prompt="ticker", version=2, cost="0.20")
    use(team, prompt="ticker", version=2, cost="0.30", hours=11)
    use(team, cost="1.00")  # a chat call: no prompt
    aggregate_pending()
    admin = MembershipFactory(team=None, tenant=team.tenant, role=Membership.Role.TENANT_ADMIN).user

    hourly = UsageAggregate.objects.filter(granularity="hour", prompt="ticker")
    by_prompt = token_client(admin).get("/api/v1/usage/summary", {"group_by": "prompt"}).json()
    by_version = token_client(admin).get("/api/v1/usage/summary", {"group_by": "prompt_version"}).json()

    assert sorted((a.prompt_version, a.requests) for a in hourly) == [(1, 1), (2, 1), (2, 1)]
    assert [(r["prompt"], r["requests"], r["cost_usd"]) for r in by_prompt["rows"]] == [
        ("", 1, "1.0000000000"),
        ("ticker", 3, "0.6000000000"),
    ]
    assert by_version["columns"][:2] == ["prompt", "prompt_version"]
    assert [(r["prompt"], r["prompt_version"], r["requests"]) for r in by_version["rows"]] == [
        ("", None, 1),
        ("ticker", 2, 2),
        ("ticker", 1, 1),
    ]


def test_export_usage_carries_prompt_and_version_in_csv_and_jsonl(team):
    use(team, prompt="ticker", version=3)
    use(team)

    def export(*args) -> str:
        out = io.StringIO()
        call_command("export_usage", *args, stdout=out)
        return out.getvalue()

    csv_rows = list(csv.DictReader(io.StringIO(export())))
    json_rows = [json.loads(line) for line in export("--format", "jsonl").splitlines()]

    assert [(r["prompt"], r["prompt_version"]) for r in csv_rows] == [("ticker", "3"), ("", "")]
    assert [(r["prompt"], r["prompt_version"]) for r in json_rows] == [("ticker", 3), ("", None)]


def test_the_finance_and_operator_dashboards_and_the_csv_show_prompts_by_version(client, team):
    def aggregate(**fields):
        UsageAggregate.objects.create(
            granularity="day", bucket_start=DAY, status_class="2xx", tenant_id=team.tenant_id, team_id=team.pk,
            tenant_name=team.tenant.name, team_name=team.name, alias="gpt-4o-mini", **fields,
        )  # fmt: skip

    aggregate(prompt="ticker", prompt_version=1, requests=3, cost_usd=Decimal("0.3"))
    aggregate(prompt="ticker", prompt_version=2, requests=5, errors=1, cost_usd=Decimal("0.5"))
    aggregate(requests=7)  # chat calls: not a prompt row
    day = DAY.date()
    dates = {"from": (day - timedelta(days=1)).isoformat(), "to": (day + timedelta(days=1)).isoformat()}
    admin = MembershipFactory(team=None, tenant=team.tenant, role=Membership.Role.TENANT_ADMIN).user
    client.force_login(admin)

    finance = client.get("/console/dashboards/", dates).content.decode()
    operator = client.get("/console/dashboards/operations/", dates).content.decode()
    exported = list(csv.reader(io.StringIO(client.get("/console/dashboards/csv/prompts/", dates).content.decode())))

    assert "ticker@1" in finance and "ticker@2" in finance
    assert 'data-testid="table-prompts"' in operator and "ticker@2" in operator
    assert exported[0][:4] == ["Prompt", "Version", "Requests", "Input tokens"]
    assert [row[:3] for row in exported[1:]] == [["ticker", "2", "5"], ["ticker", "1", "3"]]


def test_a_prompt_calls_request_page_names_the_prompt_and_its_version(client, team):
    record = use(team, prompt="ticker", version=2)
    client.force_login(MembershipFactory(team=team, role=Membership.Role.MEMBER).user)

    page = client.get(f"/console/requests/{record.request_id}/").content.decode()

    assert '<code data-testid="prompt">ticker@2</code>' in page
