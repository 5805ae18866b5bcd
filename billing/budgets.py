"""Budgets: creating them, what they have spent, their threshold alerts, and reconciling their counters with
the usage records. Enforcement itself is admission control (billing/ledger)."""

import logging
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache

import httpx
from celery import shared_task
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Sum
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from billing.aggregation import CURSOR_GRANULARITY, CURSOR_START
from billing.ledger.counters import Counter, budget_counter_key, budget_period, ticks_to_usd, usd_to_ticks
from billing.models import AggregatedBucket, Budget, BudgetAlert, BudgetCounter, UsageAggregate, UsageRecord
from portal.models import APIKey, Membership, Subscription, Team, Tenant
from portal.services import audit
from routing.models import ModelAlias
from routing.ssrf import check_base_url

log = logging.getLogger(__name__)


class BudgetError(ValueError):
    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.message, self.field = message, field


def tenant_of_target(*, scope: str, target_id: int) -> Tenant | None:
    """The tenant that owns the budget's target, or None if there is no such target."""
    if scope == Budget.Scope.TENANT:
        return Tenant.objects.filter(pk=target_id).first()
    if scope == Budget.Scope.TEAM:
        team = Team.objects.select_related("tenant").filter(pk=target_id).first()
        return team.tenant if team else None
    if scope == Budget.Scope.KEY:
        key = APIKey.objects.select_related("team__tenant").filter(pk=target_id).first()
        return key.team.tenant if key else None
    subscription = Subscription.objects.select_related("team__tenant").filter(pk=target_id).first()
    return subscription.team.tenant if subscription else None


def create_budget(*, tenant: Tenant, created_by, **fields) -> Budget:
    budget = Budget(tenant=tenant, created_by=created_by, **fields)
    validate(budget)
    budget.save()
    audit.record(tenant=tenant, actor=created_by, action="budget.created", target=budget, details=describe(budget))
    return budget


def update_budget(*, budget: Budget, actor, **fields) -> Budget:
    for name, value in fields.items():
        setattr(budget, name, value)
    validate(budget)
    budget.save()
    audit.record(tenant=budget.tenant, actor=actor, action="budget.updated", target=budget, details=describe(budget))
    return budget


def deactivate_budget(*, budget: Budget, actor) -> Budget:
    """Stop enforcing and showing a budget; its history (counters, alerts, audit) stays. Editing it back to
    active resumes it, with the period's spend so far counting."""
    budget.is_active = False
    budget.save(update_fields=["is_active", "updated_at"])
    audit.record(
        tenant=budget.tenant, actor=actor, action="budget.deactivated", target=budget, details=describe(budget)
    )
    return budget


def subscription_budget(subscription: Subscription) -> Budget | None:
    """The subscription's own monthly budget (the one approval sets), if it has an active one."""
    return (
        Budget.objects.filter(
            scope=Budget.Scope.SUBSCRIPTION, target_id=subscription.pk, period=Budget.Period.MONTHLY, is_active=True
        )
        .order_by("pk")
        .first()
    )


def set_subscription_budget(*, subscription: Subscription, limit_usd: Decimal | None, actor) -> Budget | None:
    """Give the subscription a blocking monthly budget of `limit_usd`, change the one it has, or (None)
    deactivate it. Audited like every budget change; nothing is written when nothing changes."""
    current = subscription_budget(subscription)
    if limit_usd is None:
        return deactivate_budget(budget=current, actor=actor) if current else None
    if current is None:
        return create_budget(
            tenant=subscription.team.tenant,
            created_by=actor,
            scope=Budget.Scope.SUBSCRIPTION,
            target_id=subscription.pk,
            period=Budget.Period.MONTHLY,
            limit_usd=limit_usd,
            thresholds=[80, 100],
            action=Budget.Action.BLOCK,
        )
    if current.limit_usd == limit_usd:
        return current
    return update_budget(budget=current, actor=actor, limit_usd=limit_usd)


def validate(budget: Budget) -> None:
    if budget.limit_usd is None and budget.limit_tokens is None:
        raise BudgetError("Set limit_usd, limit_tokens or both.", field="limit_usd")
    if budget.limit_usd is not None and budget.limit_usd <= 0:
        raise BudgetError("limit_usd must be greater than 0.", field="limit_usd")
    if budget.limit_tokens is not None and budget.limit_tokens <= 0:
        raise BudgetError("limit_tokens must be greater than 0.", field="limit_tokens")
    thresholds = budget.thresholds or []
    if not isinstance(thresholds, list) or not all(isinstance(t, int) and 0 < t <= 1000 for t in thresholds):
        raise BudgetError("thresholds must be a list of whole percentages between 1 and 1000.", field="thresholds")
    budget.thresholds = sorted(set(thresholds))
    if budget.action == Budget.Action.DOWNGRADE:
        if not budget.downgrade_alias:
            raise BudgetError("A downgrade budget needs downgrade_alias.", field="downgrade_alias")
        if not ModelAlias.objects.filter(name=budget.downgrade_alias).exists():
            raise BudgetError(f"There is no model alias '{budget.downgrade_alias}'.", field="downgrade_alias")
    elif budget.downgrade_alias:
        raise BudgetError("downgrade_alias applies only when action is 'downgrade'.", field="downgrade_alias")
    if budget.webhook_url:
        try:
            check_base_url(
                budget.webhook_url,
                allow_loopback=settings.TOLLWAY_ALLOW_LOOPBACK_UPSTREAMS,
                allow_private=settings.TOLLWAY_ALLOW_PRIVATE_UPSTREAMS,
            )
        except ValueError as exc:
            raise BudgetError(str(exc), field="webhook_url") from None


def describe(budget: Budget) -> dict:
    return {
        "scope": budget.scope,
        "target": budget.target_id,
        "period": budget.period,
        "limit_usd": str(budget.limit_usd) if budget.limit_usd is not None else None,
        "limit_tokens": budget.limit_tokens,
        "action": budget.action,
    }


def current_period(budget: Budget, *, now: float | None = None) -> tuple[datetime, datetime]:
    start, end = budget_period(budget.period, now if now is not None else timezone.now().timestamp())
    return datetime.fromtimestamp(start, tz=UTC), datetime.fromtimestamp(end, tz=UTC)


# The usage-record column that names each scope's target, in records and in aggregates alike.
SCOPE_FIELD = {"tenant": "tenant_id", "team": "team_id", "key": "api_key_id", "subscription": "subscription_id"}
HOUR = UsageAggregate.Granularity.HOUR
# How spend is grouped: per hour (a daily budget's curve), per day (a monthly one's), per key (the keys table).
_GROUPS = {
    "hour": (F("bucket_start"), TruncHour("created_at", tzinfo=UTC)),
    "day": (TruncDay("bucket_start", tzinfo=UTC), TruncDay("created_at", tzinfo=UTC)),
    "key": (F("api_key_id"), F("api_key_id")),
}


def recorded_spend_by(*, where: dict, start: datetime, end: datetime, per: str) -> dict:
    """What the usage records say was spent in [start, end) by the records matching `where` (e.g.
    {"team_id": 3}), as {group: (usd, tokens)} per hour, day or key. The one definition of spend: budget
    cards, burn-down charts, /api/v1/budgets/, the keys table and the ledger's catch-up all read it.

    Hours already aggregated are read from their hourly aggregates (cheap, and still there after retention
    purged the raw records); the rest from the raw records no aggregate counts yet. An hour's aggregates count
    exactly its records stored before its computed_at (billing/aggregation.py), so a record is read from one
    side or the other, never both. Aggregates are read first: an aggregation run between the two reads can only
    make this one miss a moment's records (they show on the next read), never count them twice.
    """
    totals: dict = defaultdict(lambda: [Decimal(0), 0])
    of_aggregates, of_records = _GROUPS[per]
    measures = {"usd": Sum("cost_usd"), "prompt": Sum("prompt_tokens"), "completion": Sum("completion_tokens")}
    hours = UsageAggregate.objects.filter(granularity=HOUR, bucket_start__gte=start, bucket_start__lt=end, **where)
    cursor = (
        AggregatedBucket.objects.filter(granularity=CURSOR_GRANULARITY, bucket_start=CURSOR_START)
        .values_list("computed_at", flat=True)
        .first()
    )
    # Below the aggregation cursor every record is in an aggregate, so only records stored since are scanned.
    covered = AggregatedBucket.objects.filter(
        granularity=HOUR, bucket_start=OuterRef("hour"), computed_at__gt=OuterRef("stored_at")
    )
    not_yet_aggregated = (
        UsageRecord.objects.filter(created_at__gte=start, created_at__lt=end, stored_at__gte=cursor or CURSOR_START)
        .filter(**where)
        .annotate(hour=TruncHour("created_at", tzinfo=UTC))
        .exclude(Exists(covered))
    )
    for rows, group in ((hours, of_aggregates), (not_yet_aggregated, of_records)):
        for row in rows.annotate(group=group).values("group").annotate(**measures).order_by():
            amount = totals[row["group"]]
            amount[0] += Decimal(row["usd"] or 0).quantize(Decimal("1e-10"))
            amount[1] += (row["prompt"] or 0) + (row["completion"] or 0)
    return {group: (usd, tokens) for group, (usd, tokens) in totals.items()}


def spend_per_bucket(budget: Budget, start: datetime, end: datetime) -> list[tuple[datetime, Decimal, int]]:
    """The budget's recorded spend in [start, end) per hour (daily budgets) or per day (monthly), oldest first."""
    per = "hour" if budget.period == Budget.Period.DAILY else "day"
    grouped = recorded_spend_by(where={SCOPE_FIELD[budget.scope]: budget.target_id}, start=start, end=end, per=per)
    return [(bucket, usd, tokens) for bucket, (usd, tokens) in sorted(grouped.items())]


def recorded_spend(budget: Budget, start: datetime, end: datetime) -> tuple[Decimal, int]:
    """What the usage records say the budget's target spent in [start, end): the sum of spend_per_bucket, so
    the card and the last point of the chart are the same number."""
    buckets = spend_per_bucket(budget, start, end)
    return sum((usd for _, usd, _ in buckets), Decimal(0)), sum(tokens for _, _, tokens in buckets)


def counter_keys(budget: Budget, start: datetime) -> tuple[str, str]:
    return (
        budget_counter_key(budget.pk, "usd", start.timestamp()),
        budget_counter_key(budget.pk, "tokens", start.timestamp()),
    )


def redis_client():
    return _redis_client(settings.REDIS_URL)


@lru_cache(maxsize=4)
def _redis_client(url: str):
    # One pooled client per URL for the console, the API and Celery (the gateway has its own async one).
    import redis

    return redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)


def release_stale_reservations(*, batch: int = 500) -> int:
    """Give back what gateway processes that died without settling (SIGKILL, OOM, a lost host) still hold
    reserved in Redis: their owner lease has lapsed (TOLLWAY_LEDGER_LEASE_S). Returns the amount released, in
    counter units summed (each counter is logged). Without Redis there is nothing to do."""
    if not settings.REDIS_URL:
        return 0
    from redis.exceptions import RedisError

    from billing.ledger.stores import KEY_PREFIX, KEY_PREFIX_OWNER, RELEASE_LUA

    client = redis_client()
    release = client.register_script(RELEASE_LUA)
    total = 0
    try:
        keys = list(client.scan_iter(f"{KEY_PREFIX}*", count=1000))
    except (RedisError, OSError) as exc:
        log.warning("stale reservations not released: Redis does not answer (%s)", exc)
        return 0
    for start in range(0, len(keys), batch):
        pipe = client.pipeline(transaction=False)
        for key in keys[start : start + batch]:
            release(keys=[key], args=[KEY_PREFIX_OWNER], client=pipe)
        for key, released in zip(keys[start : start + batch], pipe.execute(), strict=True):
            if int(released):
                total += int(released)
                log.warning("released %s held on %s by a gateway process that stopped", released, key.decode())
    return total


def current_spend(budget: Budget) -> dict:
    """spent and reserved in the current period, from the store that enforces it right now."""
    from billing.ledger.stores import KEY_PREFIX

    start, end = current_period(budget)
    if settings.REDIS_URL:
        try:
            client = redis_client()
            usd_key, tokens_key = counter_keys(budget, start)
            usd = client.hmget(KEY_PREFIX + usd_key, "s", "r")
            tokens = client.hmget(KEY_PREFIX + tokens_key, "s", "r")
            return {
                "period_start": start,
                "period_end": end,
                "spent_usd": ticks_to_usd(int(usd[0] or 0)),
                "reserved_usd": ticks_to_usd(int(usd[1] or 0)),
                "spent_tokens": int(tokens[0] or 0),
                "reserved_tokens": int(tokens[1] or 0),
                "source": "redis",
            }
        except Exception:  # Redis down: the database counters are what enforcement uses now
            log.warning("Redis unreachable: reading budget %s from the database", budget.pk)
    counter = BudgetCounter.objects.filter(budget=budget, period_start=start).first()
    return {
        "period_start": start,
        "period_end": end,
        "spent_usd": counter.spent_usd if counter else Decimal(0),
        "reserved_usd": counter.reserved_usd if counter else Decimal(0),
        "spent_tokens": counter.spent_tokens if counter else 0,
        "reserved_tokens": counter.reserved_tokens if counter else 0,
        "source": "database",
    }


def _recipients(budget: Budget):
    from django.contrib.auth import get_user_model

    admins = Membership.objects.filter(
        tenant=budget.tenant, role__in=[Membership.Role.TENANT_ADMIN, Membership.Role.FINANCE]
    ).values_list("user_id", flat=True)
    ids = set(admins)
    if budget.scope == Budget.Scope.TEAM:
        ids |= set(
            Membership.objects.filter(team_id=budget.target_id, role=Membership.Role.TEAM_OWNER).values_list(
                "user_id", flat=True
            )
        )
    return list(get_user_model().objects.filter(pk__in=ids))


def record_threshold_crossed(*, budget_id: int, period_start: datetime, threshold: int) -> BudgetAlert | None:
    """Once per budget, period and threshold, whichever process gets here first: in-app, email, webhook."""
    budget = Budget.objects.select_related("tenant").filter(pk=budget_id).first()
    if budget is None:
        return None
    spend = current_spend(budget)
    try:
        with transaction.atomic():
            alert = BudgetAlert.objects.create(
                budget=budget,
                period_start=period_start,
                threshold=threshold,
                spent_usd=spend["spent_usd"],
                spent_tokens=spend["spent_tokens"],
            )
    except IntegrityError:
        return None  # another process recorded it first
    limit = f"${budget.limit_usd}" if budget.limit_usd is not None else f"{budget.limit_tokens} tokens"
    subject = f"Budget at {threshold}%: {budget.scope} {budget.target_id} ({budget.period})"
    body = (
        f"The {budget.period} {budget.scope} budget of {limit} has reached {threshold}% "
        f"(spent ${spend['spent_usd']}, {spend['spent_tokens']} tokens). "
        f"At 100% requests are {'refused' if budget.action == 'block' else 'downgraded'}."
    )
    audit.notify(users=_recipients(budget), subject=subject, body=body, link="/console/usage/")
    if budget.webhook_url:
        try:
            send_budget_webhook.delay(budget_id=budget.pk, alert_id=alert.pk)
        except Exception:  # inline (eager) Celery: a dead webhook must not undo the alert already sent
            log.exception("budget %s: webhook to %s failed", budget.pk, budget.webhook_url)
    return alert


@shared_task(name="billing.send_budget_webhook", autoretry_for=(httpx.HTTPError,), max_retries=5, retry_backoff=True)
def send_budget_webhook(*, budget_id: int, alert_id: int) -> int:
    alert = BudgetAlert.objects.select_related("budget").get(pk=alert_id, budget_id=budget_id)
    budget = alert.budget
    payload = {
        "event": "budget.threshold_crossed",
        "budget": {"id": budget.pk, **describe(budget)},
        "threshold": alert.threshold,
        "period_start": alert.period_start.isoformat(),
        "spent_usd": str(alert.spent_usd),
        "spent_tokens": alert.spent_tokens,
    }
    response = httpx.post(budget.webhook_url, json=payload, timeout=5)
    response.raise_for_status()
    return response.status_code


def reconcile(*, now: float | None = None) -> list[dict]:
    """Compare each active budget's settled spend with its usage records for the current period; mirror the
    figure to BudgetCounter (what the database fallback starts from) and report drift.

    Records reach the database a moment after they settle, so a small positive drift is normal while traffic
    flows; drift is corrected when the counter is missing (Redis restarted) or lower than the records.
    """
    report = []
    for budget in Budget.objects.filter(is_active=True):
        start, end = current_period(budget, now=now)
        recorded_usd, recorded_tokens = recorded_spend(budget, start, end)
        spend = current_spend(budget)
        drift = spend["spent_usd"] - recorded_usd
        if drift < 0:
            _raise_counter_to(budget, start, recorded_usd, recorded_tokens, source=spend["source"])
        BudgetCounter.objects.get_or_create(budget=budget, period_start=start)
        if spend["source"] == "redis":
            BudgetCounter.objects.filter(budget=budget, period_start=start).update(
                spent_usd=max(spend["spent_usd"], recorded_usd),
                spent_tokens=max(spend["spent_tokens"], recorded_tokens),
            )
        if drift:
            log.warning(
                "budget %s: counter %s vs records %s (drift %s)", budget.pk, spend["spent_usd"], recorded_usd, drift
            )
        report.append(
            {"budget": budget.pk, "counter_usd": spend["spent_usd"], "recorded_usd": recorded_usd, "drift_usd": drift}
        )
    return report


def _raise_counter_to(budget: Budget, start: datetime, usd: Decimal, tokens: int, *, source: str) -> None:
    """Raise the settled totals of the budget's counters to at least what the records show."""
    from billing.ledger.stores import KEY_PREFIX, RAISE_LUA, raise_in_database

    start_s, end_s = budget_period(budget.period, start.timestamp())
    usd_key, tokens_key = counter_keys(budget, start)
    counters = [
        Counter(usd_key, "usd", None, 0, start_s, end_s, f"{budget.scope} budget", budget.pk),
        Counter(tokens_key, "tokens", None, 0, start_s, end_s, f"{budget.scope} budget", budget.pk),
    ]
    floors = [usd_to_ticks(usd), tokens]
    if source == "redis":
        redis_client().eval(RAISE_LUA, len(counters), *(KEY_PREFIX + c.key for c in counters), *floors)
    else:
        raise_in_database(counters, floors)
