"""Catalogue writes for the REST API and the console, one entry at a time.

Each write goes through the catalogue importer as a one-entry document, so the API refuses exactly what
`manage.py import_catalogue` refuses: bad names, kinds and prices, and base URLs that routing/ssrf.py rejects
under the platform's TOLLWAY_ALLOW_*_UPSTREAMS flags. A refusal is a CatalogueError whose messages start with
the entry's path (`providers[0].base_url: ...`). Values are given by model field name (`is_enabled`, not the
file's `enabled`); API keys are encrypted by the importer and never written to the audit log.
"""

from decimal import Decimal

from portal.services import audit
from routing.catalogue import CatalogueError, import_catalogue
from routing.models import Deployment, ModelAlias, Provider

# Model field -> catalogue document key, where they differ.
_DOCUMENT_KEYS = {"is_enabled": "enabled"}
_PROVIDER_FIELDS = ("kind", "base_url", "api_version", "timeout_s", "connect_timeout_s", "is_enabled")
_DEPLOYMENT_FIELDS = (
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
    "is_enabled",
)


def create_provider(*, values: dict, created_by) -> Provider:
    _refuse_taken_name(Provider, "providers", values.get("name"))
    return _write(Provider, "providers", _document_entry(values), actor=created_by, verb="created")


def update_provider(*, provider: Provider, changes: dict, updated_by) -> Provider:
    current = {field: getattr(provider, field) for field in _PROVIDER_FIELDS}
    # One source for the key: a new api_key replaces a variable name and the other way round. With
    # neither, the stored credential is kept.
    if provider.api_key_env and "api_key" not in changes:
        current["api_key_env"] = provider.api_key_env
    values = {**current, **changes, "name": provider.name}
    return _write(Provider, "providers", _document_entry(values), actor=updated_by, verb="updated")


def create_deployment(*, values: dict, created_by) -> Deployment:
    _refuse_taken_name(Deployment, "deployments", values.get("name"))
    return _write(Deployment, "deployments", _document_entry(values), actor=created_by, verb="created")


def update_deployment(*, deployment: Deployment, changes: dict, updated_by) -> Deployment:
    current = {field: getattr(deployment, field) for field in _DEPLOYMENT_FIELDS}
    current["provider"] = deployment.provider.name
    values = {**current, **changes, "name": deployment.name}
    return _write(Deployment, "deployments", _document_entry(values), actor=updated_by, verb="updated")


def create_alias(*, values: dict, created_by) -> ModelAlias:
    _refuse_taken_name(ModelAlias, "aliases", values.get("name"))
    return _write(ModelAlias, "aliases", _document_entry(values), actor=created_by, verb="created")


def update_alias(*, alias: ModelAlias, changes: dict, updated_by) -> ModelAlias:
    current = {
        "description": alias.description,
        "deployments": [route.deployment.name for route in alias.routes.select_related("deployment")],
        # Checked again with the changes: new deployments must still cover its weights and experiment arms.
        "routing": alias.routing,
    }
    values = {**current, **changes, "name": alias.name}
    return _write(ModelAlias, "aliases", _document_entry(values), actor=updated_by, verb="updated")


def _refuse_taken_name(model, section: str, name: object) -> None:
    # The importer upserts by name; through the API a create must never overwrite an existing entry.
    if isinstance(name, str) and model.objects.filter(name=name).exists():
        raise CatalogueError([f"{section}[0].name: {name!r} exists already"], source="api")


def _document_entry(values: dict) -> dict:
    entry = {}
    for field, value in values.items():
        if isinstance(value, Decimal):
            value = format(value, "f")  # prices travel as exact decimal strings
        elif isinstance(value, tuple):
            value = list(value)
        entry[_DOCUMENT_KEYS.get(field, field)] = value
    return entry


def _write(model, section: str, entry: dict, *, actor, verb: str):
    import_catalogue(data={section: [entry]}, source="api")
    instance = model.objects.get(name=entry["name"])
    details = {key: value for key, value in entry.items() if key != "api_key"}
    if "api_key" in entry:
        details["api_key"] = "set"  # that it changed, never the key
    audit.record(
        tenant=None,
        actor=actor,
        action=f"{model.__name__.lower()}.{verb}",
        target=instance,
        details=details,
    )
    return instance
