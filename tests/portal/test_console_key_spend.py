"""The team page's keys table shows each key's spend this month, by the same definition as budgets: aggregated
hours and the raw records newer than the last aggregation, each once; last month's spend does not count."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from billing import budgets
from billing.aggregation import aggregate_pending
from billing.models import Budget
from portal import services
from portal.models import APIKey
from tests.billing.factories import UsageRecordFactory
from tests.portal.test_console_world import build_world


@pytest.fixture
def world(db):
    return build_world()


def test_each_key_shows_what_it_spent_this_month(client, world):
    quiet = services.issue_api_key(team=world.team, name="quiet", source=APIKey.Source.PORTAL).api_key
    start, _ = budgets.current_period(Budget(period="monthly"))
    now = timezone.now()
    spent = {"tenant": world.tenant, "team": world.team, "api_key": world.key}
    UsageRecordFactory(
        **spent, created_at=start, cost_usd=Decimal("0.5"), prompt_tokens=100, stored_at=now - timedelta(minutes=10)
    )
    aggregate_pending()
    UsageRecordFactory(**spent, created_at=now - timedelta(seconds=1), cost_usd=Decimal("0.0042"), prompt_tokens=7)
    UsageRecordFactory(**spent, created_at=start - timedelta(seconds=1), cost_usd=Decimal("9"))  # last month
    client.force_login(world.users["member"])

    page = client.get(reverse("console:team", args=[world.team.pk])).content.decode()

    cell = page[page.index(f'data-testid="key-spend-{world.key.prefix}"') :]
    assert cell[: cell.index("</td>")].count("$0.504") == 1 and "107 tokens" in cell[: cell.index("</td>")]
    quiet_cell = page[page.index(f'data-testid="key-spend-{quiet.prefix}"') :]
    assert "$0.00" in quiet_cell[: quiet_cell.index("</td>")]
