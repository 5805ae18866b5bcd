"""The model catalogue over REST. Field names are the models'; checks are the catalogue importer's
(routing/services.py), so an entry the API accepts is one `import_catalogue` accepts too."""

from rest_framework import serializers

from portal.api.serializers import DecimalString
from routing.catalogue.schema import CAPABILITIES
from routing.models import Deployment, ModelAlias, Provider
from routing.providers.registry import KINDS


class ProviderSerializer(serializers.ModelSerializer):
    """A provider without its credential: `api_key` can be written, never read; `has_api_key` tells if one is
    stored."""

    kind = serializers.ChoiceField(choices=KINDS)
    # Checked by the catalogue importer (routing/ssrf.py), whose messages say why a URL is refused.
    base_url = serializers.CharField(max_length=500)
    api_key = serializers.CharField(
        write_only=True, required=False, trim_whitespace=False, style={"input_type": "password"}
    )
    has_api_key = serializers.SerializerMethodField()

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
        extra_kwargs = {"api_key_env": {"required": False}}

    def get_has_api_key(self, provider: Provider) -> bool:
        return bool(provider.api_key_encrypted)


class ProviderChangeSerializer(ProviderSerializer):
    class Meta(ProviderSerializer.Meta):
        read_only_fields = ["name", "updated_at"]


class DeploymentSerializer(serializers.ModelSerializer):
    """A model served by a provider; prices are USD per million tokens, as exact decimal strings."""

    provider = serializers.SlugRelatedField(slug_field="name", queryset=Provider.objects.all())
    input_per_1m = DecimalString()
    output_per_1m = DecimalString()
    cached_input_per_1m = DecimalString(required=False, allow_null=True)
    capabilities = serializers.ListField(child=serializers.ChoiceField(choices=CAPABILITIES), required=False)

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
            "is_enabled",
            "updated_at",
        ]
        read_only_fields = ["updated_at"]


class DeploymentChangeSerializer(DeploymentSerializer):
    class Meta(DeploymentSerializer.Meta):
        read_only_fields = ["name", "updated_at"]


class AliasRoutes(serializers.ListField):
    """An alias's deployments by name, in priority order: the first is tried first."""

    child = serializers.CharField()

    def get_attribute(self, alias: ModelAlias) -> list[str]:
        return [route.deployment.name for route in alias.routes.all()]


class ModelAliasSerializer(serializers.ModelSerializer):
    deployments = AliasRoutes(min_length=1)

    class Meta:
        model = ModelAlias
        fields = ["id", "name", "description", "deployments", "updated_at"]
        read_only_fields = ["updated_at"]


class ModelAliasChangeSerializer(ModelAliasSerializer):
    class Meta(ModelAliasSerializer.Meta):
        read_only_fields = ["name", "updated_at"]
