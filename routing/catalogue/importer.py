"""Applying a checked catalogue: an idempotent upsert of providers, deployments and aliases, all or nothing."""

import re
from collections import defaultdict
from dataclasses import dataclass, field

from django.db import models, transaction

from routing.catalogue.schema import (
    SECTIONS,
    AliasSpec,
    CatalogueError,
    CheckedCatalogue,
    DeploymentSpec,
    ProviderSpec,
    check_catalogue,
)
from routing.credentials import CredentialError, decrypt_secret, encrypt_secret
from routing.models import AliasDeployment, Deployment, ModelAlias, Provider


@dataclass
class SectionCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def __str__(self) -> str:
        return f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"


@dataclass
class ImportReport:
    source: str
    providers: SectionCounts = field(default_factory=SectionCounts)
    deployments: SectionCounts = field(default_factory=SectionCounts)
    aliases: SectionCounts = field(default_factory=SectionCounts)

    @property
    def has_changes(self) -> bool:
        sections = (self.providers, self.deployments, self.aliases)
        return any(counts.created or counts.updated for counts in sections)

    def __str__(self) -> str:
        return f"{self.source}: providers {self.providers}; deployments {self.deployments}; aliases {self.aliases}"


def import_catalogue(*, data: dict, source: str = "<data>") -> ImportReport:
    """Create or update every entry in `data`; entries the file does not mention are left alone.

    Raises CatalogueError listing every problem in the file, in which case nothing is written.
    """
    # Values and base URLs are checked before the transaction opens: checking a URL may resolve its host name.
    checked = check_catalogue(data, stored_base_urls=_stored_base_urls(data))
    with transaction.atomic():
        errors = checked.errors + _unresolved_references(checked) + _moved_base_urls(checked)
        if errors:
            raise CatalogueError(sorted(errors, key=_entry_position), source=source)
        report = ImportReport(source=source)
        _apply_providers(checked.providers, report.providers)
        _apply_deployments(checked.deployments, report.deployments)
        _apply_aliases(checked.aliases, report.aliases)
    return report


_ENTRY_PATH = re.compile(r"^(?P<section>[a-z]+)\[(?P<index>\d+)\]")


def _entry_position(error: str) -> tuple[int, int]:
    """Where in the file a problem is, so that problems read top to bottom: an entry's reference problems
    (found against the database) come after its value problems, not after the whole file's. Problems with the
    document as a whole come first."""
    match = _ENTRY_PATH.match(error)
    if match is None or match["section"] not in SECTIONS:
        return (-1, 0)
    return (SECTIONS.index(match["section"]), int(match["index"]))


def _stored_base_urls(data: object) -> dict[str, str]:
    """Base URLs already stored for the providers the file names (read before the file is checked)."""
    entries = data.get("providers") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return {}
    names = {entry.get("name") for entry in entries if isinstance(entry, dict) and isinstance(entry.get("name"), str)}
    return dict(Provider.objects.filter(name__in=names).values_list("name", "base_url"))


def _moved_base_urls(checked: CheckedCatalogue) -> list[str]:
    """A URL let through as the stored one must still be the stored one now that the rows are locked."""
    kept = {spec.name: spec.base_url for spec in checked.providers if spec.is_base_url_kept}
    locked = Provider.objects.select_for_update().filter(name__in=kept).values_list("name", "base_url")
    return [
        f"providers: {name}: its stored base_url changed during the import; import again"
        for name, base_url in locked
        if base_url != kept[name]
    ]


def _unresolved_references(checked: CheckedCatalogue) -> list[str]:
    """References (in document order) to names neither the file nor the database defines."""
    # section -> its model, and what one entry is called; aliases are referred to by routing.fallbacks
    sections = {"providers": (Provider, "provider"), "deployments": (Deployment, "deployment")}
    sections["aliases"] = (ModelAlias, "alias")
    known = {}
    for section, (model, _) in sections.items():
        names = {reference.name for reference in checked.references if reference.section == section}
        outside_file = names - checked.declared[section]
        stored = set(model.objects.filter(name__in=outside_file).values_list("name", flat=True))
        known[section] = checked.declared[section] | stored
    return [
        f"{ref.path}: unknown {sections[ref.section][1]} {ref.name!r}"
        for ref in checked.references
        if ref.name not in known[ref.section]
    ]


def _assign(instance: models.Model, values: dict) -> list[str]:
    """Set the fields that differ; returns their names."""
    changed = []
    for name, value in values.items():
        if getattr(instance, name) != value:
            setattr(instance, name, value)
            changed.append(name)
    return changed


def _save(instance: models.Model, changed: list[str], counts: SectionCounts) -> None:
    if instance.pk is None:
        instance.save()
        counts.created += 1
    elif changed:
        # updated_at is how the catalogue snapshot notices a change; update_fields alone would not bump it.
        instance.save(update_fields={*changed, "updated_at"})
        counts.updated += 1
    else:
        counts.unchanged += 1


def _apply_providers(specs: list[ProviderSpec], counts: SectionCounts) -> None:
    stored = Provider.objects.select_for_update().in_bulk([spec.name for spec in specs], field_name="name")
    for spec in specs:
        provider = stored.get(spec.name) or Provider(name=spec.name)
        changed = _assign(
            provider,
            {
                "kind": spec.kind,
                "base_url": spec.base_url,
                "api_version": spec.api_version,
                "timeout_s": spec.timeout_s,
                "connect_timeout_s": spec.connect_timeout_s,
                "is_enabled": spec.is_enabled,
            },
        )
        changed += _assign_credential(provider, spec)
        _save(provider, changed, counts)


def _assign_credential(provider: Provider, spec: ProviderSpec) -> list[str]:
    """A provider has one source for its key: giving one clears the other; giving neither keeps both."""
    if spec.api_key is not None:
        values = {"api_key_env": ""}
        # Fernet tokens differ on every encryption, so only a different key is encrypted again:
        # re-importing the same file must not rewrite the row.
        if not _holds_key(provider, spec.api_key):
            values["api_key_encrypted"] = encrypt_secret(spec.api_key)
        return _assign(provider, values)
    if spec.api_key_env is not None:
        return _assign(provider, {"api_key_env": spec.api_key_env, "api_key_encrypted": ""})
    return []


def _holds_key(provider: Provider, api_key: str) -> bool:
    try:
        return decrypt_secret(provider.api_key_encrypted) == api_key
    except CredentialError:
        # Stored under a Fernet key no longer configured: the file's key replaces it.
        return False


def _apply_deployments(specs: list[DeploymentSpec], counts: SectionCounts) -> None:
    stored = Deployment.objects.select_for_update().in_bulk([spec.name for spec in specs], field_name="name")
    providers = Provider.objects.in_bulk({spec.provider for spec in specs}, field_name="name")
    for spec in specs:
        deployment = stored.get(spec.name) or Deployment(name=spec.name)
        changed = _assign(
            deployment,
            {
                "provider_id": providers[spec.provider].pk,
                "model": spec.model,
                "input_per_1m": spec.input_per_1m,
                "output_per_1m": spec.output_per_1m,
                "cached_input_per_1m": spec.cached_input_per_1m,
                "context_window": spec.context_window,
                "max_output_tokens": spec.max_output_tokens,
                "capabilities": list(spec.capabilities),
                "quality": spec.quality,
                "region": spec.region,
                "tags": list(spec.tags),
                "rpm_limit": spec.rpm_limit,
                "tpm_limit": spec.tpm_limit,
                "speaks_responses": spec.speaks_responses,
                "is_enabled": spec.is_enabled,
            },
        )
        _save(deployment, changed, counts)


def _apply_aliases(specs: list[AliasSpec], counts: SectionCounts) -> None:
    stored = ModelAlias.objects.select_for_update().in_bulk([spec.name for spec in specs], field_name="name")
    stored_routes: dict[int, list[str]] = defaultdict(list)
    for alias_id, deployment_name in (
        AliasDeployment.objects.filter(alias__in=stored.values())
        .order_by("priority", "id")
        .values_list("alias_id", "deployment__name")
    ):
        stored_routes[alias_id].append(deployment_name)
    deployments = Deployment.objects.in_bulk({name for spec in specs for name in spec.deployments}, field_name="name")
    for spec in specs:
        alias = stored.get(spec.name) or ModelAlias(name=spec.name)
        is_new = alias.pk is None
        are_routes_changed = is_new or stored_routes[alias.pk] != list(spec.deployments)
        changed = _assign(alias, {"description": spec.description, "routing": spec.routing})
        if are_routes_changed:
            # A new route list is a change to the alias even when its own columns are the same.
            changed.append("updated_at")
        _save(alias, changed, counts)
        if are_routes_changed:
            # The file gives the whole list, so it replaces the stored one rather than merging into it.
            if not is_new:
                alias.routes.all().delete()
            AliasDeployment.objects.bulk_create(
                AliasDeployment(alias=alias, deployment=deployments[name], priority=priority)
                for priority, name in enumerate(spec.deployments)
            )
