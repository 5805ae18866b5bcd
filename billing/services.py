from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from django.db import transaction

from billing.models import UsageRecord
from billing.outbox import claim_orphans
from portal.models import APIKey, Subscription, Team, Tenant

_ROW_FIELDS = (
    "request_id",
    "tenant_name",
    "team_name",
    "key_prefix",
    "endpoint",
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
    "estimated",
    "latency_ms",
    "ttfb_ms",
    "upstream_latency_ms",
)


@transaction.atomic
def store_usage_rows(*, rows: list[dict]) -> int:
    """Insert usage rows (from UsageEvent.to_row); request ids already stored are skipped, so replays are safe."""
    if not rows:
        return 0
    # A key, team or tenant deleted since the request keeps its name in the row but loses the link.
    tenant_ids = set(Tenant.objects.filter(pk__in={r["tenant_id"] for r in rows}).values_list("pk", flat=True))
    team_ids = set(Team.objects.filter(pk__in={r["team_id"] for r in rows}).values_list("pk", flat=True))
    key_ids = set(APIKey.objects.filter(pk__in={r["api_key_id"] for r in rows}).values_list("pk", flat=True))
    wanted_subscriptions = {r.get("subscription_id") for r in rows} - {None}
    subscription_ids = set(Subscription.objects.filter(pk__in=wanted_subscriptions).values_list("pk", flat=True))
    records = [
        UsageRecord(
            created_at=datetime.fromtimestamp(row["created_at"], tz=UTC),
            tenant_id=row["tenant_id"] if row["tenant_id"] in tenant_ids else None,
            team_id=row["team_id"] if row["team_id"] in team_ids else None,
            api_key_id=row["api_key_id"] if row["api_key_id"] in key_ids else None,
            subscription_id=row.get("subscription_id") if row.get("subscription_id") in subscription_ids else None,
            cost_usd=Decimal(row["cost_usd"]),
            # Rows queued by an older version lack these; their baseline is their own cost.
            baseline_cost_usd=Decimal(row.get("baseline_cost_usd", row["cost_usd"])),
            prompt=row.get("prompt", ""),
            cache_hit=row.get("cache_hit", False),
            **{name: row[name] for name in _ROW_FIELDS},
        )
        for row in rows
    ]
    UsageRecord.objects.bulk_create(records, ignore_conflicts=True, batch_size=500)
    last_used: dict[int, float] = {}
    for row in rows:
        if row["api_key_id"] in key_ids:
            last_used[row["api_key_id"]] = max(last_used.get(row["api_key_id"], 0.0), row["created_at"])
    for key_id, used_at in last_used.items():
        # last_used_at is informational; updating it must not bump updated_at (it would look like a key change).
        APIKey.objects.filter(pk=key_id).update(last_used_at=datetime.fromtimestamp(used_at, tz=UTC))
    return len(records)


def recover_usage_outbox(*, directory: Path) -> int:
    """Store the rows of segments left behind by processes that died before flushing them."""
    recovered = 0
    for _path, rows in claim_orphans(directory):
        store_usage_rows(rows=rows)
        recovered += len(rows)
    return recovered
