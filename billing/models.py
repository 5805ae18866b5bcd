from django.conf import settings
from django.db import models
from django.utils import timezone

from routing.control_plane import feed
from routing.control_plane.feed import DataPlaneModel


class UsageRecord(models.Model):
    """Exactly one per authenticated /v1 request, whatever happened to it."""

    request_id = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(db_index=True)  # when the request arrived
    # When the row reached the database: aggregation finds late records (old created_at, new stored_at) by it.
    stored_at = models.DateTimeField(default=timezone.now, db_index=True)
    tenant = models.ForeignKey("portal.Tenant", null=True, on_delete=models.SET_NULL, related_name="+")
    team = models.ForeignKey("portal.Team", null=True, on_delete=models.SET_NULL, related_name="+")
    api_key = models.ForeignKey("portal.APIKey", null=True, on_delete=models.SET_NULL, related_name="+")
    # The subscription that granted the alias (portal keys); empty for operator keys.
    subscription = models.ForeignKey(
        "portal.Subscription", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Names as they were at request time, so records stay readable after renames and deletions.
    tenant_name = models.CharField(max_length=200, blank=True)
    team_name = models.CharField(max_length=200, blank=True)
    key_prefix = models.CharField(max_length=32, blank=True)
    endpoint = models.CharField(max_length=40)  # chat.completions | embeddings | messages | responses | ...
    alias = models.CharField(max_length=150, blank=True)
    deployment = models.CharField(max_length=150, blank=True)
    provider = models.CharField(max_length=100, blank=True)
    prompt = models.CharField(max_length=150, blank=True)  # prompt template's slug, when the call used one
    prompt_version = models.PositiveIntegerField(null=True, blank=True)  # the version of it that was served
    status = models.PositiveSmallIntegerField()  # HTTP status returned to the client
    error_type = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    stream = models.BooleanField(default=False)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    # What the same tokens would have cost on the alias's baseline deployment: cost_usd - this is "saved".
    baseline_cost_usd = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    cache_hit = models.BooleanField(default=False)
    estimated = models.BooleanField(default=False)
    latency_ms = models.FloatField(null=True)
    ttfb_ms = models.FloatField(null=True)
    upstream_latency_ms = models.FloatField(null=True)
    # How the call was routed: the alias's strategy, and the engine's whole decision (candidates, why each
    # skipped one was, every attempt with its error and latency): core.values.Decision.to_record().
    strategy = models.CharField(max_length=32, blank=True)
    decision = models.JSONField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "created_at"], name="usage_tenant_time"),
            models.Index(fields=["team", "created_at"], name="usage_team_time"),
        ]

    def __str__(self) -> str:
        return self.request_id


class Feedback(models.Model):
    """A caller's rating of one of its own calls (POST /v1/feedback). One per call: a new rating replaces the
    last, in this row and in the bandit (which is taught `reward` and has it taken back when replaced)."""

    usage = models.OneToOneField(UsageRecord, on_delete=models.CASCADE, related_name="feedback")
    score = models.FloatField()  # 0-1, the caller's
    reward = models.FloatField(null=True)  # 0-1, what the bandit was taught; None: the call was not a bandit's
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.usage_id}: {self.score}"


class UsageAggregate(models.Model):
    """Usage rolled up per hour or per day and per combination of dimensions (billing/aggregation.py).

    A bucket is always recomputed whole from the raw records, so re-running it gives the same row and late
    records are folded in by recomputing their bucket. Dashboards and the usage summary read only these.
    """

    class Granularity(models.TextChoices):
        HOUR = "hour"
        DAY = "day"

    granularity = models.CharField(max_length=4, choices=Granularity.choices)
    bucket_start = models.DateTimeField()
    # Dimensions. Ids are kept without foreign keys: aggregates outlive deleted teams and keys.
    tenant_id = models.IntegerField(null=True)
    team_id = models.IntegerField(null=True)
    api_key_id = models.IntegerField(null=True)
    subscription_id = models.IntegerField(null=True)
    tenant_name = models.CharField(max_length=200, blank=True)
    team_name = models.CharField(max_length=200, blank=True)
    key_prefix = models.CharField(max_length=32, blank=True)
    alias = models.CharField(max_length=150, blank=True)
    deployment = models.CharField(max_length=150, blank=True)
    provider = models.CharField(max_length=100, blank=True)
    prompt = models.CharField(max_length=150, blank=True)
    prompt_version = models.PositiveIntegerField(null=True)
    status_class = models.CharField(max_length=3)  # 2xx | 4xx | 5xx
    cache_hit = models.BooleanField(default=False)
    error_type = models.CharField(max_length=64, blank=True)
    # How the calls were routed (UsageRecord.strategy), and for an alias with an `experiment:` its name and the
    # arm the call was given ("" for none), from the recorded decision: savings per policy, arms compared.
    strategy = models.CharField(max_length=32, blank=True)
    experiment = models.CharField(max_length=100, blank=True)
    experiment_arm = models.CharField(max_length=150, blank=True)
    # The API called (UsageRecord.endpoint: chat.completions, messages, responses, embeddings...): usage per API.
    endpoint = models.CharField(max_length=40, blank=True)
    # Measures.
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    streams = models.PositiveIntegerField(default=0)
    fallbacks = models.PositiveIntegerField(default=0)  # answered by other than the first deployment tried
    retries = models.PositiveIntegerField(default=0)  # attempts beyond the first, summed
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=24, decimal_places=10, default=0)
    baseline_cost_usd = models.DecimalField(max_digits=24, decimal_places=10, default=0)
    latency_ms_sum = models.FloatField(default=0)
    latency_p50_ms = models.FloatField(null=True)
    latency_p95_ms = models.FloatField(null=True)
    latency_p99_ms = models.FloatField(null=True)
    ttfb_p50_ms = models.FloatField(null=True)
    ttfb_p95_ms = models.FloatField(null=True)
    # Percentiles cannot be added up across rows; these can. Sparse {bin: count} over fixed log-spaced bins
    # (billing/aggregation.py), merged to estimate percentiles over any range of rows.
    latency_histogram = models.JSONField(default=dict)
    ttfb_histogram = models.JSONField(default=dict)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["granularity", "bucket_start"], name="aggregate_bucket"),
            models.Index(fields=["granularity", "tenant_id", "bucket_start"], name="aggregate_tenant_bucket"),
            models.Index(fields=["granularity", "team_id", "bucket_start"], name="aggregate_team_bucket"),
        ]

    def __str__(self) -> str:
        return f"{self.granularity} {self.bucket_start:%Y-%m-%d %H:%M} {self.team_name}/{self.alias}"


class AggregatedBucket(models.Model):
    """One row per bucket ever aggregated: the lock workers take before recomputing it, and when they did."""

    granularity = models.CharField(max_length=4, choices=UsageAggregate.Granularity.choices)
    bucket_start = models.DateTimeField()
    computed_at = models.DateTimeField(null=True)
    records = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["granularity", "bucket_start"], name="aggregated_bucket_unique")]

    def __str__(self) -> str:
        return f"{self.granularity} {self.bucket_start:%Y-%m-%d %H:%M}"


class Budget(DataPlaneModel):
    """A spending or token limit on a tenant, team, key or subscription, per day or per month (UTC)."""

    change_kind = feed.BUDGET

    class Scope(models.TextChoices):
        TENANT = "tenant"
        TEAM = "team"
        KEY = "key"
        SUBSCRIPTION = "subscription"

    class Period(models.TextChoices):
        DAILY = "daily"
        MONTHLY = "monthly"

    class Action(models.TextChoices):
        BLOCK = "block"
        DOWNGRADE = "downgrade"

    tenant = models.ForeignKey("portal.Tenant", on_delete=models.CASCADE, related_name="budgets")
    scope = models.CharField(max_length=12, choices=Scope.choices)
    target_id = models.PositiveIntegerField()  # the tenant, team, key or subscription's id
    period = models.CharField(max_length=7, choices=Period.choices)
    limit_usd = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    limit_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    thresholds = models.JSONField(default=list, blank=True)  # percentages that notify, e.g. [50, 80, 100]
    action = models.CharField(max_length=9, choices=Action.choices, default=Action.BLOCK)
    downgrade_alias = models.CharField(max_length=150, blank=True)
    webhook_url = models.URLField(max_length=500, blank=True)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["scope", "target_id"], name="budget_scope_target")]

    def __str__(self) -> str:
        return f"{self.scope} {self.target_id} {self.period}"


class BudgetCounter(models.Model):
    """Spend and reservations of one budget in one period. In Redis while Redis is up (billing/ledger),
    here otherwise; reconciliation (billing/tasks.py) compares both with the usage records."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="counters")
    period_start = models.DateTimeField()
    spent_usd = models.DecimalField(max_digits=24, decimal_places=10, default=0)
    reserved_usd = models.DecimalField(max_digits=24, decimal_places=10, default=0)
    spent_tokens = models.BigIntegerField(default=0)
    reserved_tokens = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["budget", "period_start"], name="budget_counter_unique_period")]

    def __str__(self) -> str:
        return f"budget {self.budget_id} from {self.period_start:%Y-%m-%d}"


class BudgetAlert(models.Model):
    """A threshold crossed in a period: its unique row is what makes the notification go out once."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    period_start = models.DateTimeField()
    threshold = models.PositiveSmallIntegerField()
    spent_usd = models.DecimalField(max_digits=24, decimal_places=10, default=0)
    spent_tokens = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["budget", "period_start", "threshold"], name="budget_alert_once_per_period")
        ]

    def __str__(self) -> str:
        return f"budget {self.budget_id} at {self.threshold}%"


class RateWindow(models.Model):
    """A fixed one-minute window of a rate limit, used only when Redis is unreachable (billing/ledger)."""

    counter_key = models.CharField(max_length=100)  # e.g. "rpm:key:12"
    window_start = models.PositiveBigIntegerField()  # epoch minute
    used = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["counter_key", "window_start"], name="rate_window_unique")]

    def __str__(self) -> str:
        return f"{self.counter_key}@{self.window_start}"
