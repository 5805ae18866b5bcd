"""The dashboards say how fresh their figures are: up to which moment stored calls are counted (the
aggregation cursor), and how soon a new call shows."""

from datetime import UTC, datetime

import pytest

from billing.aggregation import aggregate_pending
from tests.portal.test_console_world import build_world


@pytest.fixture
def world(db):
    return build_world()


@pytest.mark.parametrize("page", ["/console/dashboards/", "/console/dashboards/operations/"])
def test_the_dashboards_say_up_to_when_calls_are_counted(client, world, page, settings):
    settings.TOLLWAY_AGGREGATE_EVERY_S, settings.TOLLWAY_AGGREGATE_SETTLE_S = 30.0, 5.0
    settings.TOLLWAY_USAGE_FLUSH_INTERVAL_S = 0.5
    client.force_login(world.users["finance"])

    before = client.get(page).content.decode()
    assert "No usage aggregated yet; a new call shows within about 36 s" in before

    aggregate_pending(now=datetime(2026, 12, 1, 21, 30, 5, tzinfo=UTC))
    after = client.get(page).content.decode()
    assert "Counts every call stored before 1 Dec 21:30:00 UTC" in after
