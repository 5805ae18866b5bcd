import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from billing.export import FIELDS
from tests.billing.factories import UsageRecordFactory

pytestmark = pytest.mark.django_db

REQUIRED = [
    "request_id",
    "created_at",
    "tenant",
    "team",
    "key_prefix",
    "alias",
    "deployment",
    "provider",
    "status",
    "error_type",
    "attempts",
    "stream",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_usd",
    "estimated",
    "latency_ms",
    "ttfb_ms",
    "upstream_latency_ms",
]


def export(*args) -> str:
    out = io.StringIO()
    call_command("export_usage", *args, stdout=out)
    return out.getvalue()


def test_the_exported_fields_keep_their_published_names_and_order():
    assert list(FIELDS[: len(REQUIRED)]) == REQUIRED


def test_jsonl_has_one_record_per_line_with_exact_cost():
    UsageRecordFactory(request_id="req_a")
    UsageRecordFactory(request_id="req_b", cost_usd=Decimal("0"), status=502, error_type="all_deployments_failed")

    lines = export("--format", "jsonl").splitlines()

    rows = [json.loads(line) for line in lines]
    assert [r["request_id"] for r in rows] == ["req_a", "req_b"]
    assert rows[0]["cost_usd"] == "0.0000013500"
    assert rows[1]["cost_usd"] == "0.0000000000" and rows[1]["status"] == 502
    assert set(REQUIRED) <= set(rows[0])


def test_csv_has_a_header_and_sums_exactly():
    for index in range(3):
        UsageRecordFactory(request_id=f"req_{index}")

    rows = list(csv.DictReader(io.StringIO(export())))

    assert len(rows) == 3
    assert sum(Decimal(r["cost_usd"]) for r in rows) == Decimal("0.00000405")
    assert rows[0]["stream"] == "false" and rows[0]["key_prefix"] == "sk-tw-abcdEFGH"


def test_since_is_inclusive_and_until_exclusive():
    for day in (1, 2, 3):
        UsageRecordFactory(request_id=f"req_day{day}", created_at=datetime(2026, 11, day, tzinfo=UTC))

    out = export("--since", "2026-11-02", "--until", "2026-11-03T00:00:00Z", "--format", "jsonl")

    assert [json.loads(line)["request_id"] for line in out.splitlines()] == ["req_day2"]


def test_a_bad_date_is_a_clear_error():
    with pytest.raises(CommandError, match="--since"):
        export("--since", "yesterday")
