from datetime import datetime

from django.db.models import QuerySet

from billing.models import UsageRecord


def usage_records_between(*, since: datetime | None, until: datetime | None) -> QuerySet[UsageRecord]:
    """Records with since <= created_at < until, oldest first (platform-wide: operators and finance)."""
    records = UsageRecord.objects.all()
    if since is not None:
        records = records.filter(created_at__gte=since)
    if until is not None:
        records = records.filter(created_at__lt=until)
    return records.order_by("created_at", "id")
