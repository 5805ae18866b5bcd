from django.db import models


class UsageRecord(models.Model):
    """Exactly one per authenticated /v1 request, whatever happened to it."""

    request_id = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(db_index=True)
    tenant = models.ForeignKey("portal.Tenant", null=True, on_delete=models.SET_NULL, related_name="+")
    team = models.ForeignKey("portal.Team", null=True, on_delete=models.SET_NULL, related_name="+")
    api_key = models.ForeignKey("portal.APIKey", null=True, on_delete=models.SET_NULL, related_name="+")
    # Names as they were at request time, so records stay readable after renames and deletions.
    tenant_name = models.CharField(max_length=200, blank=True)
    team_name = models.CharField(max_length=200, blank=True)
    key_prefix = models.CharField(max_length=32, blank=True)
    endpoint = models.CharField(max_length=40)  # chat.completions | embeddings | messages
    alias = models.CharField(max_length=150, blank=True)
    deployment = models.CharField(max_length=150, blank=True)
    provider = models.CharField(max_length=100, blank=True)
    status = models.PositiveSmallIntegerField()  # HTTP status returned to the client
    error_type = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    stream = models.BooleanField(default=False)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    estimated = models.BooleanField(default=False)
    latency_ms = models.FloatField(null=True)
    ttfb_ms = models.FloatField(null=True)
    upstream_latency_ms = models.FloatField(null=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "created_at"], name="usage_tenant_time"),
            models.Index(fields=["team", "created_at"], name="usage_team_time"),
        ]

    def __str__(self) -> str:
        return self.request_id
