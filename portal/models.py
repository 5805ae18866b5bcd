from django.conf import settings
from django.db import models

from routing.control_plane import feed
from routing.control_plane.feed import DataPlaneModel


class Tenant(DataPlaneModel):
    """An organisation. Nothing of one tenant is ever shown to another."""

    change_kind = feed.TENANT

    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Team(DataPlaneModel):
    change_kind = feed.TEAM

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100)
    # Cluster-wide limits over all the team's keys; empty means no team-wide limit.
    rpm_limit = models.PositiveIntegerField(null=True, blank=True)
    tpm_limit = models.PositiveIntegerField(null=True, blank=True)
    # Data residency (portal/services/residency.py): regions its keys' calls may run in (empty: any region),
    # and tags every deployment they reach must carry. Lowercase slugs.
    allowed_regions = models.JSONField(default=list, blank=True)
    required_tags = models.JSONField(default=list, blank=True)
    # The team's logging policy (portal/services/logging_policy.py). A yes/no, not a choice of levels: the only
    # bodies the gateway keeps are stored /v1/responses answers (usage records hold counts, never text), so
    # "store bodies or not" is the whole policy. db_default too: bulk loaders insert teams with raw SQL.
    stores_bodies = models.BooleanField(default=True, db_default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "slug"], name="team_slug_unique_per_tenant")]

    def __str__(self) -> str:
        return f"{self.tenant.slug}/{self.slug}"


class Membership(models.Model):
    class Role(models.TextChoices):
        TENANT_ADMIN = "tenant_admin", "Tenant admin"
        TEAM_OWNER = "team_owner", "Team owner"
        MEMBER = "member", "Member"
        FINANCE = "finance", "Finance"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "tenant", "team"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team or self.tenant} as {self.role}"


class APIKey(DataPlaneModel):
    """A virtual key. The secret is shown once; only its keyed hash (HMAC-SHA-256 with a pepper) is stored."""

    change_kind = feed.KEY
    fields_without_change = frozenset({"last_used_at"})

    class Source(models.TextChoices):
        # An operator's key (manage.py create_api_key) is a direct grant: its allowed_aliases are its scope.
        OPERATOR = "operator", "Operator grant"
        # A portal/REST key can call only aliases of its team's active subscriptions (optionally a subset).
        PORTAL = "portal", "Portal"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.OPERATOR)
    # Portal keys: limited to these subscriptions of the team; empty means all of the team's subscriptions.
    subscriptions = models.ManyToManyField("Subscription", blank=True, related_name="api_keys")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rotated_from = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="rotated_to"
    )
    prefix = models.CharField(max_length=32, unique=True)  # "sk-tw-" + public id: safe to show and log
    secret_hash = models.CharField(max_length=64, unique=True)  # hex HMAC-SHA-256; never accepted as a credential
    # Aliases this key may call; empty means every alias in the catalogue.
    allowed_aliases = models.JSONField(default=list, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    is_revoked = models.BooleanField(default=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    rpm_limit = models.PositiveIntegerField(null=True, blank=True)
    tpm_limit = models.PositiveIntegerField(null=True, blank=True)
    # Narrowing the team's residency: regions within the team's (empty: the team's), tags on top of the team's.
    allowed_regions = models.JSONField(default=list, blank=True)
    required_tags = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name or self.team})"


class Product(DataPlaneModel):
    """An API product: a named bundle of model aliases teams subscribe to (APIPark-style).

    A product with no tenant is published by the platform to every tenant; otherwise only its tenant sees it.
    """

    change_kind = feed.PRODUCT

    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="products")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    aliases = models.ManyToManyField("routing.ModelAlias", related_name="products", blank=True)
    requires_approval = models.BooleanField(default=True)
    default_rpm = models.PositiveIntegerField(null=True, blank=True)
    default_tpm = models.PositiveIntegerField(null=True, blank=True)
    monthly_budget_usd = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    is_published = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="product_name_unique_per_tenant")]

    def __str__(self) -> str:
        return self.name


class Subscription(DataPlaneModel):
    change_kind = feed.SUBSCRIPTION

    class Status(models.TextChoices):
        PENDING = "pending", "Pending approval"
        ACTIVE = "active", "Active"
        REJECTED = "rejected", "Rejected"
        SUSPENDED = "suspended", "Suspended"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="subscriptions")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    purpose = models.TextField()
    expected_volume = models.CharField(max_length=200, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)
    # Overrides of the product's default_rpm / default_tpm for this subscription; empty means the default.
    rpm_limit = models.PositiveIntegerField(null=True, blank=True)
    tpm_limit = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["team", "status"], name="subscription_team_status")]

    def __str__(self) -> str:
        return f"{self.team} → {self.product} ({self.status})"


class AuditLogEntry(models.Model):
    """Who did what, when and why. Written by services, never edited."""

    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_log")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=200, blank=True)  # e.g. "manage.py create_api_key"
    action = models.CharField(max_length=64)  # subscription.approved, api_key.created, ...
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64)
    reason = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit log entries"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.action} {self.target_type}:{self.target_id}"


class Notification(models.Model):
    """The in-app inbox."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    subject = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    link = models.CharField(max_length=300, blank=True)
    is_read = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.subject


class Invitation(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=20, choices=Membership.Role.choices, default=Membership.Role.MEMBER)
    token = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    accepted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.email} → {self.team}"
