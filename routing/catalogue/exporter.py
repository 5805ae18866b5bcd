"""The stored catalogue as a document in the import format, without a single secret."""

from decimal import Decimal

from django.db.models import Prefetch

from routing.catalogue.policies import routing_mapping
from routing.models import AliasDeployment, Deployment, ModelAlias, Provider


def export_catalogue() -> dict:
    """Every provider, deployment and alias, sorted by name; importing the result changes nothing."""
    aliases = ModelAlias.objects.prefetch_related(
        Prefetch("routes", queryset=AliasDeployment.objects.select_related("deployment").order_by("priority", "id"))
    )
    deployments = Deployment.objects.select_related("provider")
    return {
        "providers": [_provider_entry(provider) for provider in Provider.objects.order_by("name")],
        "deployments": [_deployment_entry(deployment) for deployment in deployments.order_by("name")],
        "aliases": [_alias_entry(alias) for alias in aliases.order_by("name")],
    }


def format_price(price: Decimal) -> str:
    """0.1500000000 -> "0.15", 10.0000000000 -> "10": plain digits, never an exponent."""
    return format(price.normalize(), "f")


def _provider_entry(provider: Provider) -> dict:
    entry = {"name": provider.name, "kind": provider.kind, "base_url": provider.base_url}
    if provider.api_key_env:
        entry["api_key_env"] = provider.api_key_env
    elif provider.api_key_encrypted:
        # The key stays in the database; this only says there is one, and import ignores it.
        entry["api_key_stored"] = True
    if provider.api_version:
        entry["api_version"] = provider.api_version
    entry["timeout_s"] = provider.timeout_s
    entry["connect_timeout_s"] = provider.connect_timeout_s
    entry["enabled"] = provider.is_enabled
    return entry


def _deployment_entry(deployment: Deployment) -> dict:
    entry = {
        "name": deployment.name,
        "provider": deployment.provider.name,
        "model": deployment.model,
        "input_per_1m": format_price(deployment.input_per_1m),
        "output_per_1m": format_price(deployment.output_per_1m),
    }
    if deployment.cached_input_per_1m is not None:
        entry["cached_input_per_1m"] = format_price(deployment.cached_input_per_1m)
    if deployment.context_window is not None:
        entry["context_window"] = deployment.context_window
    if deployment.max_output_tokens is not None:
        entry["max_output_tokens"] = deployment.max_output_tokens
    if deployment.capabilities:
        entry["capabilities"] = list(deployment.capabilities)
    # Routing facts only when set, so a catalogue that has none exports as it did before they existed.
    if deployment.quality is not None:
        entry["quality"] = deployment.quality
    if deployment.region:
        entry["region"] = deployment.region
    if deployment.tags:
        entry["tags"] = list(deployment.tags)
    if deployment.rpm_limit is not None:
        entry["rpm_limit"] = deployment.rpm_limit
    if deployment.tpm_limit is not None:
        entry["tpm_limit"] = deployment.tpm_limit
    if deployment.speaks_responses:
        entry["speaks_responses"] = True
    entry["enabled"] = deployment.is_enabled
    return entry


def _alias_entry(alias: ModelAlias) -> dict:
    entry = {"name": alias.name}
    if alias.description:
        entry["description"] = alias.description
    entry["deployments"] = [route.deployment.name for route in alias.routes.all()]
    routing = routing_mapping(alias.routing, deployments=tuple(entry["deployments"]))
    if routing:
        entry["routing"] = routing
    return entry
