"""The model catalogue over REST. Field names are the models'; checks are the catalogue importer's
(routing/services.py), so an entry the API accepts is one `import_catalogue` accepts too."""

import json
from dataclasses import fields

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.values import STRATEGIES, BreakerPolicy, RetryPolicy
from portal.api.inputs import BoundedModelSerializer, DecimalString
from routing import selectors
from routing.catalogue.fields import LOWER_SLUG, LOWER_SLUG_MESSAGE
from routing.catalogue.policies import routing_mapping
from routing.catalogue.schema import CAPABILITIES, MAX_TAGS, SLUG_MAX_LENGTH
from routing.engine.policy import MAX_EXAMPLE_CHARS, MAX_EXAMPLES_PER_ROUTE, MAX_FALLBACKS, MAX_ROUTES
from routing.models import Deployment, LearnedRouter, ModelAlias, Provider
from routing.providers.registry import KINDS

MAX_TIMEOUT_S = 3600.0
# An alias's `routing:` as JSON; weights for 50 deployments with long names fit several times over.
ROUTING_MAX_CHARS = 120_000  # a semantic alias's examples may come to 100,000 (routing/engine/policy.py)
SLUG_PATTERN = f"^{LOWER_SLUG.pattern}$"
_SLUG_MESSAGES = {"invalid": LOWER_SLUG_MESSAGE}


@extend_schema_field(
    {"type": "number", "format": "double", "minimum": 0, "exclusiveMinimum": True, "maximum": MAX_TIMEOUT_S}
)
class Seconds(serializers.FloatField):
    """A timeout: more than 0 seconds (the catalogue importer's rule), at most an hour."""

    def __init__(self, **kwargs) -> None:
        super().__init__(max_value=MAX_TIMEOUT_S, required=False, **kwargs)

    def to_internal_value(self, data) -> float:
        seconds = super().to_internal_value(data)
        if seconds <= 0:
            raise serializers.ValidationError("must be a positive number of seconds")
        return seconds


class ProviderSerializer(BoundedModelSerializer):
    """A provider without its credential: `api_key` can be written, never read; `has_api_key` tells if one is
    stored."""

    kind = serializers.ChoiceField(choices=KINDS)
    # Checked by the catalogue importer (routing/ssrf.py), whose messages say why a URL is refused.
    base_url = serializers.CharField(max_length=500)
    api_key = serializers.CharField(
        write_only=True, required=False, trim_whitespace=False, max_length=1000, style={"input_type": "password"}
    )
    # The catalogue importer's rule (routing/catalogue/schema.py), here so that the schema shows it.
    # Blank is what a provider without one shows, and means "none" when sent.
    api_key_env = serializers.RegexField(r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=200, required=False, allow_blank=True)
    has_api_key = serializers.SerializerMethodField()
    timeout_s = Seconds()
    connect_timeout_s = Seconds()

    class Meta:
        model = Provider
        fields = [
            "id",
            "name",
            "kind",
            "base_url",
            "api_key",
            "has_api_key",
            "api_key_env",
            "api_version",
            "timeout_s",
            "connect_timeout_s",
            "is_enabled",
            "updated_at",
        ]
        read_only_fields = ["updated_at"]

    def validate(self, attrs: dict) -> dict:
        if attrs.get("api_key_env") == "":
            del attrs["api_key_env"]  # the importer wants a name or nothing
        return attrs

    def get_has_api_key(self, provider: Provider) -> bool:
        return bool(provider.api_key_encrypted)


class ProviderChangeSerializer(ProviderSerializer):
    class Meta(ProviderSerializer.Meta):
        read_only_fields = ["name", "updated_at"]


@extend_schema_field({"type": "array", "items": {"type": "string", "enum": list(CAPABILITIES)}, "uniqueItems": True})
class CapabilityList(serializers.ListField):
    """The importer refuses a capability listed twice: the schema says so."""


@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "string", "pattern": SLUG_PATTERN, "maxLength": SLUG_MAX_LENGTH},
        "maxItems": MAX_TAGS,
        "uniqueItems": True,
    }
)
class TagList(serializers.ListField):
    """The importer refuses a tag listed twice: the schema says so."""


class DeploymentSerializer(BoundedModelSerializer):
    """A model served by a provider; prices are USD per million tokens, as exact decimal strings."""

    provider = serializers.SlugRelatedField(slug_field="name", queryset=Provider.objects.all())
    input_per_1m = DecimalString()
    output_per_1m = DecimalString()
    cached_input_per_1m = DecimalString(required=False, allow_null=True)
    capabilities = CapabilityList(child=serializers.ChoiceField(choices=CAPABILITIES), required=False)
    quality = serializers.FloatField(min_value=0, max_value=1, required=False, allow_null=True)
    # The catalogue importer's rule (routing/catalogue/fields.py), here so that the schema shows it.
    region = serializers.RegexField(
        SLUG_PATTERN, max_length=SLUG_MAX_LENGTH, required=False, allow_blank=True, error_messages=_SLUG_MESSAGES
    )
    tags = TagList(
        child=serializers.RegexField(SLUG_PATTERN, max_length=SLUG_MAX_LENGTH, error_messages=_SLUG_MESSAGES),
        max_length=MAX_TAGS,
        required=False,
    )

    class Meta:
        model = Deployment
        fields = [
            "id",
            "name",
            "provider",
            "model",
            "input_per_1m",
            "output_per_1m",
            "cached_input_per_1m",
            "context_window",
            "max_output_tokens",
            "capabilities",
            "quality",
            "region",
            "tags",
            "rpm_limit",
            "tpm_limit",
            "speaks_responses",
            "is_enabled",
            "updated_at",
        ]
        read_only_fields = ["updated_at"]
        # The importer's: counts start at 1.
        extra_kwargs = {
            name: {"min_value": 1} for name in ("context_window", "max_output_tokens", "rpm_limit", "tpm_limit")
        }


class DeploymentChangeSerializer(DeploymentSerializer):
    class Meta(DeploymentSerializer.Meta):
        read_only_fields = ["name", "updated_at"]


class AliasRoutes(serializers.ListField):
    """An alias's deployments by name, in priority order: the first is tried first."""

    child = serializers.CharField(max_length=Deployment._meta.get_field("name").max_length)

    def get_attribute(self, alias: ModelAlias) -> list[str]:
        return [route.deployment.name for route in alias.routes.all()]


def _numbers(*names: str) -> dict:
    return {"type": "object", "properties": {name: {"type": "number"} for name in names}, "additionalProperties": False}


@extend_schema_field(
    {
        "type": "object",
        "nullable": True,
        "description": "How the alias chooses among its deployments: the catalogue's `routing:` mapping, with the "
        "bounds routing/catalogue documents. Weights and experiment arms name the alias's own deployments; "
        "fallbacks name other aliases. {} or null routes by priority; a PATCH replaces the whole mapping.",
        "properties": {
            "strategy": {"type": "string", "enum": list(STRATEGIES)},
            "min_quality": {"type": "number", "minimum": 0, "maximum": 1},
            "weights": {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}},
            "fallbacks": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_FALLBACKS},
            "retry": _numbers(*(f.name for f in fields(RetryPolicy))),
            "breaker": _numbers(*(f.name for f in fields(BreakerPolicy))),
            "experiment": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 100},
                    "arms": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
                },
                "additionalProperties": False,
            },
            "routes": {
                "type": "array",
                "description": "The semantic strategy's routes: a prompt goes to the route of its nearest example.",
                "maxItems": MAX_ROUTES,
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "minLength": 1, "maxLength": 100},
                        "target": {"type": "string", "description": "one of the alias's deployments, or an alias"},
                        "examples": {
                            "type": "array",
                            "items": {"type": "string", "minLength": 1, "maxLength": MAX_EXAMPLE_CHARS},
                            "minItems": 1,
                            "maxItems": MAX_EXAMPLES_PER_ROUTE,
                        },
                    },
                    "required": ["name", "target", "examples"],
                    "additionalProperties": False,
                },
            },
            "threshold": {"type": "number", "minimum": 0, "maximum": 1},
            "default": {"type": "string", "description": "semantic: a deployment or an alias below the threshold"},
            "bandit": {
                "type": "object",
                "properties": {
                    "weights": _numbers("quality", "cost", "latency"),
                    "exploration": {"type": "number", "minimum": 0, "maximum": 1},
                    "frozen": {"type": "boolean"},
                },
                "additionalProperties": False,
            },
            "learned": {
                "type": "object",
                "description": "The learned strategy's choice: 0 (the default) the cheapest deployment predicted "
                "to meet min_quality; above 0 the best predicted quality minus trade_off times relative cost.",
                "properties": {"trade_off": {"type": "number", "minimum": 0, "maximum": 100}},
                "additionalProperties": False,
            },
            "cascade": {
                "type": "object",
                "description": "The cascade strategy's steps (the alias's deployments, cheapest first), the checks "
                "an answer must pass, and optionally max_cost_usd as a decimal string.",
            },
        },
        "additionalProperties": False,
        "example": {"strategy": "cheapest", "min_quality": 0.7},
    }
)
class AliasRouting(serializers.Field):
    """How the alias routes, as the catalogue's `routing:` mapping: checked by the catalogue importer (the
    engine's parse_policy, and fallbacks naming aliases that exist)."""

    default_error_messages = {
        # DRF fills these in with str.format: braces are doubled.
        "not_a_mapping": 'Must be a mapping such as {{"strategy": "cheapest"}}, or null to route by priority.',
        "too_long": f"Must be at most {ROUTING_MAX_CHARS} characters as JSON.",
    }

    def __init__(self, **kwargs) -> None:
        super().__init__(required=False, allow_null=True, **kwargs)

    def get_attribute(self, alias: ModelAlias) -> dict:
        return routing_mapping(alias.routing, deployments=tuple(route.deployment.name for route in alias.routes.all()))

    def to_representation(self, value: dict) -> dict:
        return value

    def to_internal_value(self, data) -> dict:
        if not isinstance(data, dict):
            self.fail("not_a_mapping")
        if len(json.dumps(data)) > ROUTING_MAX_CHARS:
            self.fail("too_long")
        return data


@extend_schema_field(
    {
        "type": "object",
        "nullable": True,
        "readOnly": True,
        "description": "The learned router the alias routes with (its latest version, made by `manage.py "
        "train_router`); null before one is trained. Read-only.",
        "properties": {
            "version": {"type": "integer", "minimum": 1},
            "trained_at": {"type": "string", "format": "date-time"},
            "rows": {"type": "integer", "description": "the training file's lines it learnt from"},
            "deployments": {"type": "array", "items": {"type": "string"}, "description": "those it predicts"},
            "recommended": {
                "type": "object",
                "nullable": True,
                "description": "The operating point it routes with when neither the alias nor the call sets a "
                "floor or a trade-off: the cheapest that cross-validation on the training file found to keep "
                "`keep` + `margin` of `best`'s quality (by one standard error); null without cross-validation "
                "(too few lines) or when no point kept it.",
                "properties": {
                    "label": {"type": "string", "example": "trade-off 0.07"},
                    "floor": {"type": "number", "nullable": True},
                    "trade_off": {"type": "number"},
                    "quality_share": {"type": "number", "description": "cross-validated quality / best's"},
                    "cost_share": {"type": "number", "description": "estimated cost / best's"},
                    "best": {"type": "string"},
                    "keep": {"type": "number"},
                    "margin": {
                        "type": "number",
                        "minimum": 0,
                        "description": "nested cross-validation's estimate of the optimism of choosing the point "
                        "on the same lines, added to keep",
                    },
                },
            },
        },
    }
)
class LearnedModel(serializers.Field):
    def __init__(self, **kwargs) -> None:
        super().__init__(read_only=True, **kwargs)

    def get_attribute(self, alias: ModelAlias):
        return selectors.latest_learned_router(alias=alias)

    def to_representation(self, router: LearnedRouter | None) -> dict | None:
        if router is None:
            return None
        trained_at = serializers.DateTimeField().to_representation(router.created_at)
        return {
            "version": router.version,
            "trained_at": trained_at,
            "rows": router.examples,
            "deployments": list(router.deployments),
            "recommended": _recommended(selectors.learned_recommendation(router=router)),
        }


def _recommended(recommendation: selectors.LearnedRecommendation | None) -> dict | None:
    if recommendation is None or recommendation.point is None:
        return None
    point = recommendation.point
    return {
        "label": point.label,
        "floor": point.floor,
        "trade_off": point.trade_off,
        "quality_share": point.quality_share,
        "cost_share": point.cost_share,
        "best": recommendation.best,
        "keep": recommendation.keep,
        "margin": recommendation.margin,
    }


class ModelAliasSerializer(BoundedModelSerializer):
    deployments = AliasRoutes(min_length=1, max_length=50)
    routing = AliasRouting()
    learned_model = LearnedModel()

    class Meta:
        model = ModelAlias
        fields = ["id", "name", "description", "deployments", "routing", "learned_model", "updated_at"]
        read_only_fields = ["updated_at"]


class ModelAliasChangeSerializer(ModelAliasSerializer):
    class Meta(ModelAliasSerializer.Meta):
        read_only_fields = ["name", "updated_at"]
