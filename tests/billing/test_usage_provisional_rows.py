"""A stream's provisional row never becomes a second record: a final row for the same request replaces it,
whichever is stored first."""

import pytest

from billing.models import UsageRecord
from billing.services import store_usage_rows
from billing.usage_writer import INTERRUPTED
from tests.billing.usage_writer_doubles import usage_event

pytestmark = pytest.mark.django_db


def rows_of(request_id: str) -> tuple[dict, dict]:
    final = usage_event(request_id, stream=True).to_row()
    provisional = {**final, "provisional": True, "error_type": INTERRUPTED, "completion_tokens": 0}
    return provisional, final


def test_a_provisional_row_and_its_final_row_in_one_batch_store_the_final_one():
    provisional, final = rows_of("req_1")
    store_usage_rows(rows=[provisional, final, provisional])
    [record] = UsageRecord.objects.all()
    assert (record.error_type, record.completion_tokens) == ("", 12)


def test_a_final_row_stored_after_its_provisional_one_replaces_the_interrupted_record():
    provisional, final = rows_of("req_1")
    store_usage_rows(rows=[provisional])
    interrupted = UsageRecord.objects.get()
    assert interrupted.error_type == INTERRUPTED

    store_usage_rows(rows=[final])

    [record] = UsageRecord.objects.all()
    assert (record.error_type, record.completion_tokens) == ("", 12)
    assert record.stored_at > interrupted.stored_at  # aggregation recomputes the hour that counted it


def test_a_provisional_row_stored_after_its_final_one_changes_nothing():
    provisional, final = rows_of("req_1")
    store_usage_rows(rows=[final])
    store_usage_rows(rows=[provisional])
    [record] = UsageRecord.objects.all()
    assert (record.error_type, record.completion_tokens) == ("", 12)


def test_a_final_row_replayed_never_replaces_another_final_record():
    _, final = rows_of("req_1")
    store_usage_rows(rows=[final])
    store_usage_rows(rows=[{**final, "completion_tokens": 99}])
    assert UsageRecord.objects.get().completion_tokens == 12
