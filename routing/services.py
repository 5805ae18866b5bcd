"""Catalogue writes for the REST API and the console, one entry at a time.

Each write goes through the catalogue importer as a one-entry document, so the API refuses exactly what
`manage.py import_catalogue` refuses: bad names, kinds and prices, and base URLs that routing/ssrf.py rejects
under the platform's TOLLWAY_ALLOW_*_UPSTREAMS flags. A refusal is a CatalogueError whose messages start with
the entry's path (`providers[0].base_url: ...`). Values are given by model field name (`is_enabled`, not the
file's `enabled`); API keys are encrypted by the importer and never written to the audit log.
"""

import hashlib
from collections.abc import Iterable
from decimal import Decimal

from django.db import transaction
from django.db.models import Max

from portal.services import audit
from routing.catalogue import CatalogueError, import_catalogue
from routing.engine import learned, learned_cv
from routing.models import AliasDeployment, Deployment, LearnedRouter, ModelAlias, Provider

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


# --- learned routing (routing/engine/learned.py) ---------------------------------------------------------------


class TrainingFileError(Exception):
    """The training file is refused; `errors` are "line N: ..." messages (nothing was stored)."""

    def __init__(self, errors: list[str]) -> None:
        shown = errors[: learned.MAX_ERRORS_SHOWN]
        more = len(errors) - len(shown)
        super().__init__("; ".join(shown) + (f"; and {more} more" if more > 0 else ""))
        self.errors = errors


def train_router(
    *, alias: ModelAlias, lines: Iterable[str], seed: int = learned.SEED, keep: float = learned_cv.KEEP
) -> LearnedRouter:
    """Train the alias's next learned-router version from JSON lines and store it; the alias routes with it
    from the next snapshot on (the change feed carries it to every process). Every line is checked first:
    one bad line refuses the whole file. The same file and seed give the same model bytes. The version also
    stores its cross-validation on the file and the operating point recommended to keep `keep`, plus the
    nested margin, of the best deployment's quality (routing/engine/learned_cv.py)."""
    digest = hashlib.sha256()

    def hashed(source: Iterable[str]):
        for line in source:
            digest.update(line.encode())
            yield line

    known = tuple(
        AliasDeployment.objects.filter(alias=alias)
        .order_by("priority", "id")
        .values_list("deployment__name", flat=True)
    )
    examples, errors = learned.parse_lines(hashed(lines), deployments=known)
    if errors:
        raise TrainingFileError(errors)
    scored = {name for _, scores in examples for name in scores}
    deployments = [name for name in known if name in scored]
    prices = {
        name: (input_price, output_price)
        for name, input_price, output_price in Deployment.objects.filter(name__in=deployments).values_list(
            "name", "input_per_1m", "output_per_1m"
        )
    }
    # Six trainings (five folds and the final model), minutes of CPU for the largest file: outside the
    # transaction, so no row is held meanwhile.
    model = learned_cv.fit(examples, deployments, prices=prices, seed=seed, keep=keep)
    blob = learned.to_bytes(model)
    with transaction.atomic():
        ModelAlias.objects.select_for_update().filter(pk=alias.pk).first()  # one new version at a time
        latest = LearnedRouter.objects.filter(alias=alias).aggregate(latest=Max("version"))["latest"] or 0
        return LearnedRouter.objects.create(
            alias=alias,
            version=latest + 1,
            weights=blob,
            deployments=deployments,
            examples=len(examples),
            seed=seed,
            file_sha256=digest.hexdigest(),
            size_bytes=len(blob),
        )
