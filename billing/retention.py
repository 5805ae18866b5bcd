"""Raw usage records are kept TOLLWAY_USAGE_RETENTION_DAYS; aggregates are kept for good.

A record is purged once it is older than the retention and its hour has been aggregated (its AggregatedBucket
has a computed_at): the aggregates then hold everything it contributed. Records of hours never aggregated
stay until they are. Deletes go in batches of TOLLWAY_USAGE_PURGE_BATCH, each its own transaction, so a purge
of millions of rows never holds one huge transaction or lock.

Aggregation and purging must never work on the same hour at once: a recompute that read half-purged raw
records would overwrite a complete hourly row with a partial one. So aggregation treats hours ending a day
before the purge horizon as frozen once computed (`frozen_before`): records arriving that late (months after
their hour) are not counted, and are purged like the others. Daily rows are built from hourly rows, never from
raw records, so purging cannot change them.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef
from django.db.models.functions import TruncHour
from django.utils import timezone

from billing.models import AggregatedBucket, UsageAggregate, UsageRecord


def purge_horizon(now: datetime | None = None) -> datetime:
    """Records created before this are past retention (a whole hour, so an hour is purged whole)."""
    horizon = (now or timezone.now()) - timedelta(days=settings.TOLLWAY_USAGE_RETENTION_DAYS)
    return horizon.replace(minute=0, second=0, microsecond=0)


def frozen_before(now: datetime | None = None) -> datetime:
    """Computed hours that end before this are never recomputed: a day of margin before the purge reaches them."""
    return purge_horizon(now) + timedelta(days=1)


def purge_expired_usage(*, now: datetime | None = None, batch_size: int | None = None) -> int:
    """Delete raw records past retention whose hour is aggregated; the number deleted."""
    batch_size = batch_size or settings.TOLLWAY_USAGE_PURGE_BATCH
    aggregated_hour = AggregatedBucket.objects.filter(
        granularity=UsageAggregate.Granularity.HOUR, bucket_start=OuterRef("hour"), computed_at__isnull=False
    )
    expired = (
        UsageRecord.objects.filter(created_at__lt=purge_horizon(now))
        .annotate(hour=TruncHour("created_at"))
        .filter(Exists(aggregated_hour))
    )
    purged = 0
    while True:
        ids = list(expired.values_list("pk", flat=True)[:batch_size])
        if not ids:
            return purged
        purged += UsageRecord.objects.filter(pk__in=ids).delete()[0]
        if len(ids) < batch_size:
            return purged
