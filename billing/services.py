from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from django.db import IntegrityError, transaction
from django.db.models import Case, DateTimeField, Value, When
from django.utils import timezone

from billing.models import Feedback, UsageRecord
from billing.outbox import claim_orphans, read_batches
from billing.usage_writer import INTERRUPTED
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


LAST_USED_PRECISION = timedelta(minutes=1)


def store_usage_rows(*, rows: list[dict]) -> int:
    """Insert usage rows (from UsageEvent.to_row); request ids already stored are skipped, so replays are safe.

    A provisional row (a stream's, written when it started) is only stored when no final row for its request
    is: a final row in the same batch replaces it, and one arriving later replaces the record stored from it
    (recovery may read a dead process's segments in any order). Either way, one record per request id.

    A tenant, team or subscription deleted since the request keeps its name in the row but loses the link.
    Deletions are rare, so a flush first trusts its links and lets the foreign keys (checked at commit) say
    otherwise: checking every flush cost three queries and a row per team in it, which is most of a flush's
    work when thousands of teams are in use.
    """
    if not rows:
        return 0
    rows = _one_row_per_request(rows)
    if not transaction.get_connection().in_atomic_block:
        try:
            return _store_rows(rows, check_links=False)
        except IntegrityError:
            pass  # a link is gone: store again, keeping only the links that remain
    return _store_rows(rows, check_links=True)


def _one_row_per_request(rows: list[dict]) -> list[dict]:
    final_ids = {r["request_id"] for r in rows if not r.get("provisional")}
    by_request: dict[str, dict] = {}
    for row in rows:
        if row.get("provisional") and row["request_id"] in final_ids:
            continue
        by_request.setdefault(row["request_id"], row)
    return list(by_request.values())


@transaction.atomic
def _store_rows(rows: list[dict], *, check_links: bool) -> int:
    final_ids = {r["request_id"] for r in rows if not r.get("provisional")}
    stored_last_used = dict(
        APIKey.objects.filter(pk__in={r["api_key_id"] for r in rows}).values_list("pk", "last_used_at")
    )
    key_ids = set(stored_last_used)
    if check_links:
        tenant_ids = set(Tenant.objects.filter(pk__in={r["tenant_id"] for r in rows}).values_list("pk", flat=True))
        team_ids = set(Team.objects.filter(pk__in={r["team_id"] for r in rows}).values_list("pk", flat=True))
        wanted_subscriptions = {r.get("subscription_id") for r in rows} - {None}
        subscription_ids = set(Subscription.objects.filter(pk__in=wanted_subscriptions).values_list("pk", flat=True))
    else:
        tenant_ids = {r["tenant_id"] for r in rows}
        team_ids = {r["team_id"] for r in rows}
        subscription_ids = {r.get("subscription_id") for r in rows} - {None}
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
            prompt_version=row.get("prompt_version"),  # rows queued by an older version lack it
            cache_hit=row.get("cache_hit", False),
            # Rows queued by an older version have no routing decision.
            strategy=row.get("strategy", ""),
            decision=row.get("decision"),
            **{name: row[name] for name in _ROW_FIELDS},
        )
        for row in rows
    ]
    UsageRecord.objects.bulk_create(records, ignore_conflicts=True, batch_size=500)
    _supersede_interrupted(records=[r for r in records if r.request_id in final_ids])
    last_used: dict[int, float] = {}
    for row in rows:
        if row["api_key_id"] in key_ids:
            last_used[row["api_key_id"]] = max(last_used.get(row["api_key_id"], 0.0), row["created_at"])
    moved = {}
    for key_id, used_at in last_used.items():
        when = datetime.fromtimestamp(used_at, tz=UTC)
        stored = stored_last_used.get(key_id)
        # Kept to the minute: precise enough for "last used", and it spares a busy key's row a rewrite (and
        # its indexes new entries) on every flush. Informational: it must not bump updated_at either.
        if stored is None or when - stored >= LAST_USED_PRECISION:
            moved[key_id] = when
    if moved:
        # One statement for the whole flush: a key a row cost a round trip each, dozens a flush with thousands
        # of keys in use, and on a two-core node the database's share of that is the gateway's loss.
        whens = [When(pk=key_id, then=Value(when)) for key_id, when in moved.items()]
        APIKey.objects.filter(pk__in=moved).update(last_used_at=Case(*whens, output_field=DateTimeField()))
    return len(records)


_SUPERSEDED_FIELDS = (
    *_ROW_FIELDS,
    "strategy",
    "decision",
    "created_at",
    "tenant_id",
    "team_id",
    "api_key_id",
    "subscription_id",
)


def _supersede_interrupted(*, records: list[UsageRecord]) -> None:
    """Final rows whose request was stored from its provisional row (interrupted) replace that record."""
    if not records:
        return
    interrupted = set(
        UsageRecord.objects.filter(request_id__in=[r.request_id for r in records], error_type=INTERRUPTED).values_list(
            "request_id", flat=True
        )
    )
    for record in records:
        if record.request_id in interrupted:
            fields = {name: getattr(record, name) for name in _SUPERSEDED_FIELDS}
            fields.update(cost_usd=record.cost_usd, baseline_cost_usd=record.baseline_cost_usd)
            fields.update(prompt=record.prompt, prompt_version=record.prompt_version, cache_hit=record.cache_hit)
            # A new stored_at: aggregation recomputes the hour that counted the interrupted record.
            UsageRecord.objects.filter(request_id=record.request_id, error_type=INTERRUPTED).update(
                **fields, stored_at=timezone.now()
            )


def recover_usage_outbox(*, directory: Path, batch_size: int = 1000) -> int:
    """Store the rows of segments left behind by processes that died before storing them; the number of
    records stored (a stream cut mid-way counts once, as interrupted)."""
    request_ids: set[str] = set()
    for path in claim_orphans(directory):
        for rows in read_batches(path, limit=batch_size):
            store_usage_rows(rows=rows)
            request_ids.update(r["request_id"] for r in rows)
    return len(request_ids)


# --- feedback (POST /v1/feedback) ------------------------------------------------------------------------------


@transaction.atomic
def rate_call(*, usage: UsageRecord, score: float, reward: float | None) -> float | None:
    """Store the caller's rating of a call; the last rating wins. Returns the reward the replaced rating taught
    the bandit (None when there was none), so the caller can take it back."""
    # The call's row locked: two ratings of one call at once must not both see "no rating yet" and both teach
    # the bandit (nor the second fail on the unique usage).
    UsageRecord.objects.select_for_update().filter(pk=usage.pk).exists()
    existing = Feedback.objects.filter(usage=usage).first()
    now = timezone.now()
    if existing is None:
        Feedback.objects.create(usage=usage, score=score, reward=reward, created_at=now, updated_at=now)
        return None
    previous = existing.reward
    existing.score, existing.reward, existing.updated_at = score, reward, now
    existing.save(update_fields=["score", "reward", "updated_at"])
    return previous
