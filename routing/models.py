from django.db import models

from routing.control_plane import feed
from routing.control_plane.feed import DataPlaneModel

KIND_CHOICES = [
    ("openai", "OpenAI"),
    ("azure-openai", "Azure OpenAI"),
    ("anthropic", "Anthropic"),
    ("gemini", "Google Gemini"),
    ("openai-compatible", "OpenAI-compatible (vLLM, Ollama, llama.cpp, TGI, Mistral, Groq, Together, DeepSeek)"),
]


class Provider(DataPlaneModel):
    change_kind = feed.CATALOGUE
    change_per_object = False

    name = models.SlugField(max_length=100, unique=True)
    kind = models.CharField(max_length=32, choices=KIND_CHOICES)
    base_url = models.URLField(max_length=500)
    # Fernet token of the API key (routing/credentials.py); never stored or shown in clear.
    api_key_encrypted = models.TextField(blank=True)
    # Name of an environment variable to read the key from at load time, instead of storing it.
    api_key_env = models.CharField(max_length=200, blank=True)
    api_version = models.CharField(max_length=50, blank=True)  # Azure
    connect_timeout_s = models.FloatField(default=5.0)
    timeout_s = models.FloatField(default=120.0)
    is_enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name


class Deployment(DataPlaneModel):
    """A model served by a provider, with its prices. Prices are USD per one million tokens."""

    change_kind = feed.CATALOGUE
    change_per_object = False

    name = models.SlugField(max_length=150, unique=True)
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="deployments")
    model = models.CharField(max_length=200)  # the upstream's own model id (Azure: deployment name)
    input_per_1m = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    output_per_1m = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    cached_input_per_1m = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    context_window = models.PositiveIntegerField(null=True, blank=True)
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    capabilities = models.JSONField(default=list, blank=True)  # chat, embeddings, tools, vision, json
    # What routing chooses by (core.values.Target): the operator's score, where it runs, and the provider's quota.
    quality = models.FloatField(null=True, blank=True)  # 0-1
    region = models.CharField(max_length=32, blank=True)  # e.g. "eu"; empty: unknown
    tags = models.JSONField(default=list, blank=True)  # slugs, e.g. ["zero-retention"]
    rpm_limit = models.PositiveIntegerField(null=True, blank=True)
    tpm_limit = models.PositiveIntegerField(null=True, blank=True)
    # The upstream serves the OpenAI Responses API itself (POST {base_url}/responses): /v1/responses calls routed
    # here pass through natively instead of being translated to chat completions. OpenAI-kind providers only.
    speaks_responses = models.BooleanField(default=False)
    is_enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name


class ModelAlias(DataPlaneModel):
    """The name clients send as `model`, served by one or more deployments in priority order."""

    change_kind = feed.CATALOGUE
    change_per_object = False

    name = models.CharField(max_length=150, unique=True)
    description = models.TextField(blank=True)
    # What "savings" are measured against: the cost a request would have had here. Empty means the most
    # expensive of the alias's enabled deployments.
    baseline_deployment = models.ForeignKey(
        Deployment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The catalogue's `routing:` mapping as routing/engine/policy.py's policy_to_dict writes it; {}: by priority.
    routing = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "model aliases"

    def __str__(self) -> str:
        return self.name


class AliasDeployment(DataPlaneModel):
    change_kind = feed.CATALOGUE
    change_per_object = False

    alias = models.ForeignKey(ModelAlias, on_delete=models.CASCADE, related_name="routes")
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="routes")
    priority = models.PositiveIntegerField(default=0)  # lower is tried first

    class Meta:
        ordering = ["priority", "id"]
        constraints = [models.UniqueConstraint(fields=["alias", "deployment"], name="alias_deployment_unique")]

    def __str__(self) -> str:
        return f"{self.alias} -> {self.deployment} ({self.priority})"


class ChangeEvent(models.Model):
    """One change the data plane must see (routing/control_plane/feed.py writes these, in the writer's
    transaction). Gateway processes read the feed from the last version they applied."""

    version = models.BigIntegerField(primary_key=True)
    kind = models.CharField(max_length=16)  # tenant, team, key, subscription, product, budget, catalogue
    object_id = models.BigIntegerField(null=True)  # None: every object of that kind
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"v{self.version} {self.kind}:{self.object_id}"


class ChangeCounter(models.Model):
    """The feed's last version, one row. Writers take the next version with an UPDATE that holds the row until
    their commit, so versions become visible in order and a reader never skips one that commits late."""

    version = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"change feed at v{self.version}"


class LearnedRouter(DataPlaneModel):
    """One trained version of an alias's learned router (routing/engine/learned.py): the alias routes with its
    latest version; older ones are kept, to compare and to see what was served when."""

    change_kind = feed.CATALOGUE
    change_per_object = False

    alias = models.ForeignKey(ModelAlias, on_delete=models.CASCADE, related_name="learned_routers")
    version = models.PositiveIntegerField()  # 1, 2, 3... per alias
    # The model as routing/engine/learned.py's to_bytes writes it (zlib'd float32 weights, ~200 KB).
    weights = models.BinaryField()
    deployments = models.JSONField(default=list)  # the deployments it predicts, in the blob's order
    examples = models.PositiveIntegerField()  # training lines
    seed = models.PositiveIntegerField()
    file_sha256 = models.CharField(max_length=64)  # of the training file, to tell which file made it
    size_bytes = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["alias_id", "-version"]
        constraints = [models.UniqueConstraint(fields=["alias", "version"], name="learned_router_version_unique")]

    def __str__(self) -> str:
        return f"{self.alias} learned v{self.version}"


class StoredResponse(models.Model):
    """A /v1/responses answer kept for its team (`store`, true by default), so that `previous_response_id`
    continues the conversation from any gateway process and on any deployment, and GET/DELETE
    /v1/responses/{id} work. Not a DataPlaneModel: never in the snapshot, read from the database on demand,
    off the event loop (routing/proxy/responses_store.py). Purged after TOLLWAY_RESPONSES_RETENTION_DAYS."""

    id = models.CharField(primary_key=True, max_length=64)  # resp_<32 hex>, as answered
    team = models.ForeignKey("portal.Team", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    response = models.JSONField()  # the Response object as answered (GET /v1/responses/{id})
    input_items = models.JSONField()  # every input item of the conversation up to this turn (input_items)
    # The conversation as chat messages, this response's output included and instructions excluded: what a
    # request with previous_response_id starts from.
    messages = models.JSONField()

    def __str__(self) -> str:
        return self.id
