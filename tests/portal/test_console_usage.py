import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import UsageRecord
from tests.portal.factories import UserFactory
from tests.portal.test_console_world import build_world

USAGE = "/console/usage/"


@pytest.fixture
def world(db):
    return build_world()


def record(
    team, *, cost: str, prompt: int = 100, completion: int = 50, status: int = 200, days_ago: float = 1, **extra
):
    return UsageRecord.objects.create(
        request_id=uuid.uuid4().hex,
        created_at=timezone.now() - timedelta(days=days_ago),
        tenant=team.tenant,
        team=team,
        endpoint="chat.completions",
        alias=extra.pop("alias", "gpt-4o-mini"),
        status=status,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost_usd=Decimal(cost),
        **extra,
    )


def test_usage_of_the_last_30_days_is_summed_per_team_in_exact_decimal_dollars(client, world):
    record(world.team, cost="0.0000450000")
    record(world.team, cost="0.1000000000", status=429)
    record(world.team, cost="5", days_ago=31)  # too old
    record(world.rival_team, cost="7")  # another tenant
    client.force_login(world.users["member"])

    response = client.get(USAGE)

    (team,) = [t for t in response.context["teams"] if t.pk == world.team.pk]
    assert team.usage["requests"] == 2 and team.usage["errors"] == 1
    assert (team.usage["prompt_tokens"], team.usage["completion_tokens"]) == (200, 100)
    assert team.usage["cost_usd"] == Decimal("0.1000450000")
    # Shown by the dashboards' dollars rule: cents from a cent up, as the chargeback shows the same spend.
    assert team.usage["cost"] == "$0.10"
    totals = response.context["totals"]
    assert totals["requests"] == 2 and totals["cost"] == "$0.10"
    page = response.content.decode()
    assert 'data-testid="total-cost">$0.10<' in page and "Rivals" not in page


def test_finance_sees_every_team_of_the_tenant(client, world):
    record(world.other_team, cost="2.5")
    client.force_login(world.users["finance"])

    response = client.get(USAGE)

    assert {t.name for t in response.context["teams"]} == {"Checkout", "Search"}
    assert response.context["totals"]["cost"] == "$2.50"


def test_top_models_are_ranked_by_cost(client, world):
    # Answered calls name the deployment that served them: their aliases are models, not unknown names.
    record(world.team, cost="0.01", alias="cheap", deployment="cheap-1")
    record(world.team, cost="3", alias="pricey", deployment="pricey-1")
    client.force_login(world.users["team_owner"])

    by_alias = client.get(USAGE).context["by_alias"]

    assert [row["alias"] for row in by_alias] == ["pricey", "cheap"]


@pytest.mark.django_db
def test_a_user_without_teams_sees_zeros_and_an_empty_state(client):
    client.force_login(UserFactory())

    response = client.get(USAGE)

    assert response.context["totals"]["cost"] == "$0.00"
    assert "No teams to show" in response.content.decode()
