"""Prompt templates, their immutable versions and what each environment serves.

A template's own row is its draft (edited freely); a version freezes the draft under the next number and is
never changed after. A publication says what one environment serves: one version, or a split between two;
publishing, splitting and rolling back each add a row (the history), and exactly one row per environment is
current. The gateway reads current publications and the versions they name (routing/control_plane/loader.py):
every write records a `prompt` change, and since prompts change rarely, one change reloads them all.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from portal.models import Product, Team, Tenant
from routing.control_plane import feed
from routing.control_plane.feed import DataPlaneModel

DEFAULT_ENVIRONMENTS = ("dev", "staging", "prod")


class PromptTemplate(DataPlaneModel):
    change_kind = feed.PROMPT
    change_per_object = False

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="prompt_templates")
    # The owning team: its owners and the tenant's admins change it. It is called by that team, by every
    # team of the tenant when shared, and by subscribers of the products that bundle it.
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="prompt_templates")
    is_shared = models.BooleanField(default=False)
    slug = models.SlugField(max_length=100)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # Callers through a product see no text of a private template: they call it, nothing more.
    is_private = models.BooleanField(default=False)
    products = models.ManyToManyField(Product, blank=True, related_name="prompts")
    # The draft: what the next version freezes.
    alias = models.CharField(max_length=100)  # the catalogue alias calls go to
    messages = models.JSONField(default=list)  # [{"role", "content"}], content may name {{variables}}
    variables = models.JSONField(default=dict)  # name -> spec (core/prompts.py), checked when saved
    parameters = models.JSONField(default=dict)  # temperature, max_tokens, tools, response_format, ...
    locked_parameters = models.JSONField(default=list)  # parameter names a caller may not override
    output_schema = models.JSONField(null=True, blank=True)  # JSON Schema the answer must validate against
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "slug"], name="prompt_slug_unique_per_tenant")]
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class PromptVersion(DataPlaneModel):
    """A frozen draft. Immutable: services create versions and never update them."""

    change_kind = feed.PROMPT
    change_per_object = False

    template = models.ForeignKey(PromptTemplate, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()  # 1, 2, 3... per template
    alias = models.CharField(max_length=100)
    messages = models.JSONField()
    variables = models.JSONField()
    parameters = models.JSONField()
    locked_parameters = models.JSONField()
    output_schema = models.JSONField(null=True, blank=True)
    message = models.CharField(max_length=500, blank=True)  # the author's note, like a commit message
    diff = models.TextField(blank=True)  # unified diff against the version before (empty for version 1)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_label = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["template", "number"], name="prompt_version_unique")]
        ordering = ["template", "number"]

    def __str__(self) -> str:
        return f"{self.template.slug}@{self.number}"


class PromptEnvironment(DataPlaneModel):
    """An environment a tenant added beside the defaults (dev, staging, prod)."""

    change_kind = feed.PROMPT
    change_per_object = False

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="prompt_environments")
    name = models.SlugField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="prompt_environment_unique")]

    def __str__(self) -> str:
        return self.name


class PromptPublication(DataPlaneModel):
    """What one environment serves from one moment: `split` maps version numbers (as strings, the REST
    shape) to percentages summing to 100. Rows are never changed but for `is_current`."""

    change_kind = feed.PROMPT
    change_per_object = False

    class Action(models.TextChoices):
        PUBLISHED = "published", "Published"
        SPLIT = "split", "Split"
        ROLLED_BACK = "rolled_back", "Rolled back"

    template = models.ForeignKey(PromptTemplate, on_delete=models.CASCADE, related_name="publications")
    environment = models.SlugField(max_length=32)
    split = models.JSONField()  # {"3": 100} or {"3": 90, "4": 10}
    action = models.CharField(max_length=20, choices=Action.choices)
    # The publication this one replaced: rolling back returns to it.
    replaced = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    is_current = models.BooleanField(default=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["template", "environment"], condition=Q(is_current=True), name="one_current_publication"
            )
        ]
        ordering = ["template", "environment", "-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.template.slug} {self.environment}: {self.split}"


class PromptExample(models.Model):
    """A test run kept with the version it ran: the variables, where it ran, what came back and its cost."""

    version = models.ForeignKey(PromptVersion, on_delete=models.CASCADE, related_name="examples")
    variables = models.JSONField(default=dict)
    alias = models.CharField(max_length=100)
    output = models.TextField(blank=True)
    cost_usd = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"example of {self.version} on {self.alias}"
