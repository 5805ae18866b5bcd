"""A key's last_used_at follows its calls to the minute: a busy key's row is not rewritten on every flush."""

from datetime import UTC, datetime

import pytest

from billing.services import store_usage_rows
from portal import services
from tests.billing.usage_writer_doubles import usage_event
from tests.factories import TeamFactory

pytestmark = pytest.mark.django_db


def row_at(key, request_id: str, when: float) -> dict:
    row = usage_event(request_id).to_row()
    team = key.team
    return {**row, "api_key_id": key.pk, "team_id": team.pk, "tenant_id": team.tenant_id, "created_at": when}


def test_last_used_moves_when_a_minute_has_passed_and_not_before():
    key = services.issue_api_key(team=TeamFactory(), name="busy").api_key
    start = 1_790_000_000.0
    store_usage_rows(rows=[row_at(key, "req_1", start)])
    key.refresh_from_db()
    assert key.last_used_at == datetime.fromtimestamp(start, tz=UTC)

    store_usage_rows(rows=[row_at(key, "req_2", start + 30)])
    key.refresh_from_db()
    assert key.last_used_at == datetime.fromtimestamp(start, tz=UTC)  # within the minute: left as it was

    store_usage_rows(rows=[row_at(key, "req_3", start + 61)])
    key.refresh_from_db()
    assert key.last_used_at == datetime.fromtimestamp(start + 61, tz=UTC)


def test_one_flush_moves_each_of_its_keys_to_its_own_latest_call():
    team = TeamFactory()
    quiet, busy, fresh = (services.issue_api_key(team=team, name=name).api_key for name in ("quiet", "busy", "new"))
    start = 1_790_000_000.0
    store_usage_rows(rows=[row_at(quiet, "req_q1", start), row_at(busy, "req_b1", start)])

    store_usage_rows(
        rows=[
            row_at(quiet, "req_q2", start + 20),  # within its minute: stays
            row_at(busy, "req_b2", start + 90),
            row_at(busy, "req_b3", start + 75),  # out of order in the batch: the latest wins
            row_at(fresh, "req_n1", start + 80),
        ]
    )

    for key in (quiet, busy, fresh):
        key.refresh_from_db()
    assert quiet.last_used_at == datetime.fromtimestamp(start, tz=UTC)
    assert busy.last_used_at == datetime.fromtimestamp(start + 90, tz=UTC)
    assert fresh.last_used_at == datetime.fromtimestamp(start + 80, tz=UTC)
