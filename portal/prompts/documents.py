"""Prompt templates as a YAML document (config as code): `manage.py export_prompts` writes one, `import_prompts`
makes the database say what it says, through the services (so permissions, checks and audit are the same).

    prompts:
    - slug: ticker-summary
      tenant: acme              # slugs
      team: research
      name: Ticker summary
      alias: mini
      version: 3                # which version the content below is; null: a draft never frozen
      messages: [{role: user, content: "Summarise {{ticker}}"}]
      variables: {ticker: {type: string, required: true}}
      publications: {prod: 3, staging: {"3": 90, "4": 10}}   # or `latest`: the version of the content above

An entry's content (alias, messages, variables, parameters, locked_parameters, output_schema) is its latest
version's. Importing is idempotent: content equal to the latest version changes nothing, and neither does a
field or a publication that is already as written; changed content becomes the next version. `version` is
informational, except that null keeps the content as a draft. Publication numbers are the database's own.
Environments a publication names must exist, and environments the file leaves out are left as they are.
All or nothing: every problem is reported with its path (`prompts[2].variables.ticker.type: ...`) and then
nothing is written.
"""

from dataclasses import dataclass, field
from typing import Any

import yaml
from django.db import transaction

from portal.errors import PortalError
from portal.models import Product, Team, Tenant
from portal.prompts import services
from portal.prompts.models import PromptTemplate

CONTENT_FIELDS = services.FROZEN_FIELDS
TEMPLATE_FIELDS = ("name", "description", "is_shared", "is_private")
ENTRY_FIELDS = ("slug", "tenant", "team", *TEMPLATE_FIELDS, "products", "version", *CONTENT_FIELDS, "publications")
REQUIRED_FIELDS = ("slug", "tenant", "team", "name", "alias", "messages")
MAX_ENTRIES = 10_000


class ImportFailed(Exception):
    """The document cannot be imported; `problems` are "path: message" lines. Nothing was written."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


@dataclass
class ImportResult:
    created: list[str] = field(default_factory=list)
    versioned: list[str] = field(default_factory=list)  # "slug@n"
    updated: list[str] = field(default_factory=list)
    published: list[str] = field(default_factory=list)  # "slug prod"
    unchanged: list[str] = field(default_factory=list)

    def changes(self) -> int:
        return len(self.created) + len(self.versioned) + len(self.updated) + len(self.published)

    def summary(self) -> str:
        return (
            f"{len(self.created)} created, {len(self.versioned)} new versions, {len(self.updated)} updated, "
            f"{len(self.published)} publications changed, {len(self.unchanged)} unchanged"
        )


class _Problem(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")


# --- export ------------------------------------------------------------------------------------------------


def export_document(*, tenant: Tenant | None = None, team: Team | None = None) -> dict:
    templates = PromptTemplate.objects.select_related("tenant", "team").prefetch_related("products")
    if tenant is not None:
        templates = templates.filter(tenant=tenant)
    if team is not None:
        templates = templates.filter(team=team)
    return {"prompts": [_entry_of(template) for template in templates.order_by("tenant__slug", "slug")]}


def _entry_of(template: PromptTemplate) -> dict:
    latest = template.versions.order_by("-number").first()
    content = services.frozen_of(latest or template)
    publications = {}
    for publication in template.publications.filter(is_current=True).order_by("environment"):
        split = publication.split
        publications[publication.environment] = int(next(iter(split))) if len(split) == 1 else dict(split)
    return {
        "slug": template.slug,
        "tenant": template.tenant.slug,
        "team": template.team.slug,
        "name": template.name,
        "description": template.description,
        "is_shared": template.is_shared,
        "is_private": template.is_private,
        "products": sorted(product.name for product in template.products.all()),
        "version": latest.number if latest else None,
        **content,
        "publications": publications,
    }


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data) -> bool:
        return True  # the loader refuses aliases: an object met twice is written twice


def _text(dumper: yaml.SafeDumper, value: str):
    # Multi-line messages read as written (a block), not as one line full of \n; PyYAML quotes a text that a
    # block cannot hold (trailing spaces, say).
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def dump(document: dict) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


# --- import ------------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """YAML without aliases (`*name`): a few lines of them expand to billions of nodes for whoever walks them."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed here", mark)
        return super().compose_node(parent, index)


def load(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader, without aliases
    except yaml.YAMLError as exc:
        raise ImportFailed([f"not YAML: {str(exc)[:500]}"]) from None


def import_document(document: Any, *, actor: services.Operator) -> ImportResult:
    """Make the database say what the document says, or raise ImportFailed and write nothing."""
    if not isinstance(document, dict) or set(document) != {"prompts"} or not isinstance(document["prompts"], list):
        raise ImportFailed(["the document is a mapping with one key, `prompts`, a list of prompts"])
    entries = document["prompts"]
    if len(entries) > MAX_ENTRIES:
        raise ImportFailed([f"prompts: at most {MAX_ENTRIES} entries"])
    result, problems, seen = ImportResult(), [], {}
    with transaction.atomic():
        for index, entry in enumerate(entries):
            path = f"prompts[{index}]"
            changes_before = result.changes()
            try:
                # One savepoint per entry: a failed write leaves the transaction usable for the next check.
                with transaction.atomic():
                    _import_entry(entry, path=path, actor=actor, result=result, seen=seen)
                if result.changes() == changes_before:
                    result.unchanged.append(f"{path}")
            except _Problem as problem:
                problems.append(str(problem))
            except services.PromptInvalid as exc:
                problems.append(f"{path}.{exc.param}: {exc.message}")
            except PortalError as exc:
                problems.append(f"{path}: {exc.message}")
        if problems:
            transaction.set_rollback(True)
            raise ImportFailed(problems)
    return result


def _import_entry(entry: Any, *, path: str, actor, result: ImportResult, seen: dict) -> None:
    if not isinstance(entry, dict):
        raise _Problem(path, "each prompt is a mapping")
    for name in entry:
        if name not in ENTRY_FIELDS:
            raise _Problem(f"{path}.{str(name)[:64]}", f"unknown field; one of {', '.join(ENTRY_FIELDS)}")
    for name in REQUIRED_FIELDS:
        if name not in entry:
            raise _Problem(f"{path}.{name}", "required")
    tenant = _by_slug(Tenant.objects.all(), entry["tenant"], path=f"{path}.tenant")
    team = _by_slug(Team.objects.filter(tenant=tenant), entry["team"], path=f"{path}.team")
    slug = services.clean_slug(entry["slug"])
    if (tenant.pk, slug) in seen:
        raise _Problem(f"{path}.slug", f"{slug!r} is also at {seen[tenant.pk, slug]}")
    seen[tenant.pk, slug] = path
    version = entry.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise _Problem(f"{path}.version", "a version number, or null for a draft")
    content = _clean_content(entry)
    fields = {name: entry[name] for name in TEMPLATE_FIELDS if name in entry}
    label = actor.label

    template = PromptTemplate.objects.filter(tenant=tenant, slug=slug).select_related("team", "tenant").first()
    if template is None:
        template = services.create_template(actor=actor, actor_label=label, team=team, slug=slug, **fields, **content)
        result.created.append(slug)
    elif template.team_id != team.pk:
        raise _Problem(f"{path}.team", f"{slug} belongs to team {template.team.slug}; it cannot move")
    else:
        # update_draft checks the fields again; only what differs is written (and audited).
        changed = {name: value for name, value in fields.items() if getattr(template, name) != value}
        if version is None:  # the draft itself is what the file says
            changed.update({name: value for name, value in content.items() if getattr(template, name) != value})
        if changed:
            services.update_draft(template, actor=actor, actor_label=label, **changed)
            result.updated.append(slug)
    if version is not None:
        latest = template.versions.order_by("-number").first()
        if latest is None or services.frozen_of(latest) != content:
            draft_changes = {name: value for name, value in content.items() if getattr(template, name) != value}
            if draft_changes:
                services.update_draft(template, actor=actor, actor_label=label, **draft_changes)
            frozen = services.create_version(template, actor=actor, actor_label=label, message="import_prompts")
            result.versioned.append(f"{slug}@{frozen.number}")
    if "products" in entry:
        _import_products(template, entry["products"], path=f"{path}.products", actor=actor, result=result)
    _import_publications(template, entry.get("publications") or {}, path=path, actor=actor, result=result)


def _by_slug(rows, slug: Any, *, path: str):
    if not isinstance(slug, str) or not slug:
        raise _Problem(path, "a slug")
    found = rows.filter(slug=slug[:100]).first()
    if found is None:
        raise _Problem(path, f"no {rows.model.__name__.lower()} {slug[:100]!r}")
    return found


def _clean_content(entry: dict) -> dict:
    """The content as the services would store it, so that it compares equal to a stored version."""
    for name in CONTENT_FIELDS:
        if name in entry:
            services.require_storable(entry[name], param=name)
    messages, variables = services.clean_text_and_variables(entry["messages"], entry.get("variables"))
    return {
        "alias": services.clean_alias(entry["alias"]),
        "messages": messages,
        "variables": variables,
        "parameters": services.clean_parameters(entry.get("parameters")),
        "locked_parameters": services.clean_locked(entry.get("locked_parameters")),
        "output_schema": services.clean_output_schema(entry.get("output_schema")),
    }


def _import_products(template, names: Any, *, path: str, actor, result: ImportResult) -> None:
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise _Problem(path, "a list of the tenant's product names")
    products = []
    for index, name in enumerate(names):
        product = Product.objects.filter(tenant=template.tenant, name=name[:200]).first()
        if product is None:
            raise _Problem(f"{path}[{index}]", f"no product {name[:200]!r} in tenant {template.tenant.slug}")
        products.append(product)
    if set(template.products.values_list("pk", flat=True)) != {product.pk for product in products}:
        services.set_products(template, actor=actor, actor_label=actor.label, products=products)
        if template.slug not in result.updated:
            result.updated.append(template.slug)


def _import_publications(template, publications: Any, *, path: str, actor, result: ImportResult) -> None:
    if not isinstance(publications, dict):
        raise _Problem(f"{path}.publications", "a mapping of environment -> version, `latest` or a split")
    latest = template.versions.order_by("-number").values_list("number", flat=True).first()
    for environment, served in publications.items():
        where = f"{path}.publications.{str(environment)[:32]}"
        if served == "latest":
            if latest is None:
                raise _Problem(where, "there is no version to publish")
            served = latest
        split = {str(served): 100} if isinstance(served, int) and not isinstance(served, bool) else served
        if not isinstance(split, dict):
            raise _Problem(where, "a version number, `latest` or a split such as {3: 90, 4: 10}")
        split = {str(version): weight for version, weight in split.items()}
        current = services.current_publication(template, environment) if isinstance(environment, str) else None
        if current is not None and current.split == split:
            continue
        try:
            services.publish_split(template, actor=actor, actor_label=actor.label, environment=environment, split=split)
        except services.PromptInvalid as exc:
            raise _Problem(where, exc.message) from None
        result.published.append(f"{template.slug} {environment}")
