"""Raw usage records past retention are purged in batches once their hour is aggregated; aggregates stay."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing import tasks
from billing.aggregation import aggregate_pending
from billing.models import UsageAggregate, UsageRecord
from billing.retention import purge_expired_usage
from tests.billing.factories import UsageRecordFactory

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(minute=30, second=0, microsecond=0)


@pytest.fixture(autouse=True)
def retention(settings):
    settings.TOLLWAY_USAGE_RETENTION_DAYS = 90
    settings.TOLLWAY_AGGREGATE_SETTLE_S = 0


def records_at(created_at, count: int) -> None:
    for _ in range(count):
        UsageRecordFactory(created_at=created_at, stored_at=created_at + timedelta(minutes=1))


def test_aggregated_records_older_than_the_retention_are_purged_and_their_aggregates_kept():
    expired_hour = (NOW - timedelta(days=91)).replace(minute=0)
    kept_hour = (NOW - timedelta(days=89)).replace(minute=0)
    records_at(expired_hour, 3)
    records_at(kept_hour, 2)
    aggregate_pending(now=NOW)

    assert purge_expired_usage(now=NOW) == 3

    assert sorted(UsageRecord.objects.values_list("created_at", flat=True)) == [kept_hour, kept_hour]
    (expired,) = UsageAggregate.objects.filter(granularity="hour", bucket_start=expired_hour)
    assert expired.requests == 3
    assert UsageAggregate.objects.get(granularity="day", bucket_start=expired_hour.replace(hour=0)).requests == 3


def test_expired_records_of_an_hour_never_aggregated_are_kept_until_it_is():
    expired_hour = (NOW - timedelta(days=100)).replace(minute=0)
    records_at(expired_hour, 2)

    assert purge_expired_usage(now=NOW) == 0
    assert UsageRecord.objects.count() == 2

    aggregate_pending(now=NOW)
    assert purge_expired_usage(now=NOW) == 2
    assert UsageAggregate.objects.get(granularity="hour", bucket_start=expired_hour).requests == 2


def test_the_purge_works_in_batches_until_nothing_expired_is_left():
    hours = [(NOW - timedelta(days=95, hours=h)).replace(minute=0) for h in range(3)]
    for hour in hours:
        records_at(hour, 3)
    aggregate_pending(now=NOW)

    assert purge_expired_usage(now=NOW, batch_size=2) == 9
    assert UsageRecord.objects.count() == 0


def test_the_beat_task_purges_with_the_configured_retention(settings):
    settings.TOLLWAY_USAGE_RETENTION_DAYS = 30
    records_at((timezone.now() - timedelta(days=31)).replace(minute=0, second=0, microsecond=0), 2)
    records_at(timezone.now() - timedelta(days=29), 1)
    aggregate_pending()

    tasks.purge_expired_usage.apply()  # in this process, whether or not a broker is configured

    assert UsageRecord.objects.count() == 1
