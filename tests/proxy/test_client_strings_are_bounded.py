"""What a client's strings can put into usage records, log lines, metrics labels and error messages is bounded
(core/bounds.py holds the audit): a model the catalogue does not know is stored as alias "", every
UsageRecord CharField stays within its max_length, and an echoed string is cut with a trailing "…"."""

import logging
from datetime import UTC, datetime

import httpx
import pytest
from django.db import models

from billing.models import UsageRecord
from billing.usage import UsageEvent
from core.bounds import USAGE_COLUMN_LIMITS
from core.values import Principal
from routing.observability import metrics
from routing.observability.logs import AccessLine
from tests.gateway import wait_for_usage

pytestmark = pytest.mark.django_db(transaction=True)

HUGE = "m" * 100_000


def huge_event() -> UsageEvent:
    principal = Principal(
        key_id=1, key_prefix="k" * 500, secret_hash="", tenant_id=1, tenant_name="t" * 5000, team_id=1,
        team_name="n" * 5000, allowed_aliases=None, expires_at=None, is_revoked=False, rpm_limit=None, tpm_limit=None,
    )  # fmt: skip
    event = UsageEvent.begin(principal=principal, endpoint="e" * 500, request_id="r" * 500)
    for name in ("alias", "deployment", "provider", "prompt", "error_type"):
        setattr(event, name, HUGE)
    event.close(status=400, error_type=HUGE)
    return event


def test_the_column_bounds_are_usage_records_own_max_lengths():
    char_fields = {f.name: f.max_length for f in UsageRecord._meta.fields if isinstance(f, models.CharField)}

    assert USAGE_COLUMN_LIMITS == char_fields


def test_every_string_column_of_a_usage_row_fits_whatever_the_values():
    row = huge_event().to_row()

    for column, limit in USAGE_COLUMN_LIMITS.items():
        assert len(row[column]) <= limit, column
    assert row["alias"].endswith("…")


def test_a_usage_row_of_huge_values_is_stored(transactional_db):
    # On PostgreSQL a value longer than its column fails the whole batch insert.
    row = huge_event().to_row()
    row.update(tenant_id=None, team_id=None, api_key_id=None, subscription_id=None)
    UsageRecord.objects.create(**{**row, "created_at": datetime.fromtimestamp(row["created_at"], UTC)})

    assert UsageRecord.objects.get().alias == row["alias"]


def test_an_access_line_is_bounded_whatever_the_values():
    fields = AccessLine(huge_event()).fields()

    assert all(len(value) <= 150 for value in fields.values() if isinstance(value, str))
    assert len(str(AccessLine(huge_event()))) < 3000


def test_a_100k_character_model_is_cut_in_the_error_and_stored_as_the_unknown_model(gateway, api_key, caplog):
    caplog.set_level(logging.INFO, logger="tollway.access")
    body = {"model": HUGE, "messages": [{"role": "user", "content": "Hi"}]}
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {api_key}"}, timeout=30
    )

    assert response.status_code == 404
    message = response.json()["error"]["message"]
    assert "m" * 149 + "…" in message
    assert len(message) < 200
    [record] = wait_for_usage(1)
    assert (record.alias, record.deployment, record.provider) == ("", "", "")
    assert record.error_type == "model_not_found"
    assert all(HUGE not in line for line in caplog.messages)


def test_an_unknown_model_id_in_the_path_is_stored_as_the_unknown_model(gateway, api_key):
    response = httpx.get(f"{gateway.url}/v1/models/{'m' * 5000}", headers={"authorization": f"Bearer {api_key}"})

    assert response.status_code == 404
    assert len(response.json()["error"]["message"]) < 200
    [record] = wait_for_usage(1)
    assert record.alias == ""


def test_metrics_never_label_a_model_the_catalogue_does_not_know():
    metrics.take_pending()
    metrics.observe_usage(huge_event())

    assert [route[1] for route in metrics.take_pending()] == ["unknown"]
