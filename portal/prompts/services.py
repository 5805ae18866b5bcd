"""Writing prompt templates: drafts, versions, publications. The console, the REST API and import_prompts all
write through here, so permissions, validation and the audit log are the same whichever way a change comes.

Who may write: the owning team's owners and the tenant's admins (portal/roles.py: can_manage_team), or the
operator: manage.py commands pass an `Operator`, which no request can produce (REST and console pass a user).
"""

import difflib
import json
from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction

from core import prompts as rendering
from portal import roles
from portal.errors import InvalidInput, NotAllowed
from portal.models import Product, Team
from portal.prompts.models import (
    DEFAULT_ENVIRONMENTS,
    PromptEnvironment,
    PromptPublication,
    PromptTemplate,
    PromptVersion,
)
from portal.services import audit
from routing.models import ModelAlias

# The chat parameters a template may set as defaults (and a caller override, unless locked).
PARAMETERS = rendering.PARAMETERS
MAX_PARAMETERS_BYTES = 64_000
MAX_SCHEMA_BYTES = 64_000
MAX_SLUG_CHARS = 100
MAX_ENVIRONMENTS = 20
MAX_JSON_DEPTH = 32
MAX_PRODUCTS = 50
DRAFT_FIELDS = ("name", "description", "alias", "messages", "variables", "parameters", "locked_parameters")
# What a version freezes, in the order its diff shows them.
FROZEN_FIELDS = ("alias", "messages", "variables", "parameters", "locked_parameters", "output_schema")


class PromptInvalid(InvalidInput):
    """A template field is not acceptable; `param` names it (`messages[0].content`, `variables.ticker`)."""

    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(message)
        self.param = param[:200]  # a path into deep JSON must not make the answer (or a log line) long


class Operator:
    """Whoever runs manage.py on the server: allowed everything, recorded by its label (`manage.py
    import_prompts`), never as a user."""

    is_authenticated = False

    def __init__(self, label: str) -> None:
        self.label = label

    def __str__(self) -> str:
        return self.label


def _is_operator(actor) -> bool:
    return isinstance(actor, Operator)


def _require_manager(actor, team: Team) -> None:
    if not _is_operator(actor) and not roles.can_manage_team(actor, team):
        raise NotAllowed("only the team's owners and the tenant's admins can change its prompts")


def require_storable(value: Any, *, param: str, depth: int = 0) -> None:
    """PostgreSQL refuses NUL in text and jsonb, and no database stores a lone surrogate ("\\ud800" is valid
    JSON): either would fail inside the INSERT, a 500. Refused here, naming the field; so is JSON nested deeper
    than any template needs (walking it must not exhaust the stack)."""
    if depth > MAX_JSON_DEPTH:
        raise PromptInvalid(f"nested deeper than {MAX_JSON_DEPTH} levels", param=param)
    if isinstance(value, str):
        if "\x00" in value:
            raise PromptInvalid("text must not contain NUL characters", param=param)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise PromptInvalid("text must be valid Unicode (no lone surrogates)", param=param) from None
    elif isinstance(value, Mapping):
        for key, item in value.items():
            require_storable(key, param=param, depth=depth + 1)
            require_storable(item, param=f"{param}.{str(key)[:64]}", depth=depth + 1)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            require_storable(item, param=f"{param}[{index}]", depth=depth + 1)


# --- checking a draft --------------------------------------------------------------------------------------


def clean_slug(slug: Any) -> str:
    if not isinstance(slug, str) or not slug.strip():
        raise PromptInvalid("a prompt needs a slug", param="slug")
    slug = slug.strip()
    if len(slug) > MAX_SLUG_CHARS or not all(c.isascii() and (c.isalnum() or c in "-_") for c in slug):
        raise PromptInvalid(f"a slug is letters, digits, - and _ (at most {MAX_SLUG_CHARS} characters)", param="slug")
    return slug.lower()


def clean_alias(alias: Any) -> str:
    if not isinstance(alias, str) or not alias.strip():
        raise PromptInvalid("a prompt needs the alias its calls go to", param="alias")
    alias = alias.strip()
    if len(alias) > 100 or not ModelAlias.objects.filter(name=alias).exists():
        raise PromptInvalid(f"no alias named {alias[:100]!r} in the catalogue", param="alias")
    return alias


def clean_parameters(parameters: Any) -> dict:
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise PromptInvalid("parameters must be an object", param="parameters")
    for name, value in parameters.items():
        if name not in PARAMETERS:
            shown = str(name)[:64]
            raise PromptInvalid(
                f"unknown parameter {shown!r}: one of {', '.join(sorted(PARAMETERS))}", param=f"parameters.{shown}"
            )
        if isinstance(value, bool) and bool not in PARAMETERS[name] or not isinstance(value, PARAMETERS[name]):
            raise PromptInvalid(f"{name} has the wrong type", param=f"parameters.{name}")
    if len(json.dumps(parameters)) > MAX_PARAMETERS_BYTES:
        raise PromptInvalid(f"parameters are larger than {MAX_PARAMETERS_BYTES} bytes", param="parameters")
    return parameters


def clean_locked(locked: Any) -> list[str]:
    if locked is None:
        return []
    if not isinstance(locked, list) or not all(isinstance(name, str) for name in locked):
        raise PromptInvalid("locked_parameters is a list of parameter names", param="locked_parameters")
    for name in locked:
        if name not in PARAMETERS:
            raise PromptInvalid(f"unknown parameter {name[:64]!r}", param="locked_parameters")
    return sorted(set(locked))


def clean_output_schema(schema: Any) -> dict | None:
    if schema is None or schema == {}:
        return None
    if not isinstance(schema, dict):
        raise PromptInvalid("output_schema must be a JSON Schema object", param="output_schema")
    if len(json.dumps(schema)) > MAX_SCHEMA_BYTES:
        raise PromptInvalid(f"output_schema is larger than {MAX_SCHEMA_BYTES} bytes", param="output_schema")
    kind = schema.get("type")
    if kind is not None and kind not in ("object", "array", "string", "number", "integer", "boolean", "null"):
        raise PromptInvalid("output_schema's type is not a JSON Schema type", param="output_schema.type")
    return schema


def clean_text_and_variables(messages: Any, variables: Any) -> tuple[list[dict], dict]:
    """The messages and their variable specs, checked together (a spec must name a variable the text uses)."""
    try:
        cleaned = rendering.clean_messages(messages)
        specs = rendering.clean_variable_specs(variables, used=rendering.variables_in_messages(cleaned))
    except rendering.PromptError as exc:
        raise PromptInvalid(exc.message, param=exc.param) from exc
    return cleaned, rendering.specs_as_dict(specs)


# --- templates and their drafts ----------------------------------------------------------------------------


@transaction.atomic
def create_template(
    *,
    actor,
    team: Team,
    slug: Any,
    name: Any,
    alias: Any,
    messages: Any,
    variables: Any = None,
    description: Any = "",
    parameters: Any = None,
    locked_parameters: Any = None,
    output_schema: Any = None,
    is_shared: bool = False,
    is_private: bool = False,
    actor_label: str = "",
) -> PromptTemplate:
    _require_manager(actor, team)
    for field, value in (
        ("slug", slug),
        ("name", name),
        ("alias", alias),
        ("messages", messages),
        ("variables", variables),
        ("description", description),
        ("parameters", parameters),
        ("locked_parameters", locked_parameters),
        ("output_schema", output_schema),
    ):
        require_storable(value, param=field)
    for flag, value in (("is_shared", is_shared), ("is_private", is_private)):
        if not isinstance(value, bool):
            raise PromptInvalid(f"{flag} is true or false", param=flag)
    slug = clean_slug(slug)
    if PromptTemplate.objects.filter(tenant_id=team.tenant_id, slug=slug).exists():
        raise PromptInvalid(f"a prompt with the slug {slug!r} exists already in this tenant", param="slug")
    messages, variables = clean_text_and_variables(messages, variables)
    values = {
        "name": _clean_name(name),
        "description": _clean_description(description),
        "alias": clean_alias(alias),
        "messages": messages,
        "variables": variables,
        "parameters": clean_parameters(parameters),
        "locked_parameters": clean_locked(locked_parameters),
        "output_schema": clean_output_schema(output_schema),
    }
    try:
        # Two creates of one slug at once both pass the check above: the constraint decides, as a 400.
        with transaction.atomic():
            template = PromptTemplate.objects.create(
                tenant_id=team.tenant_id,
                team=team,
                slug=slug,
                is_shared=is_shared,
                is_private=is_private,
                created_by=actor if getattr(actor, "is_authenticated", False) else None,
                **values,
            )
    except IntegrityError:
        raise PromptInvalid(f"a prompt with the slug {slug!r} exists already in this tenant", param="slug") from None
    audit.record(
        tenant=team.tenant,
        actor=actor,
        actor_label=actor_label,
        action="prompt.created",
        target=template,
        details={"slug": slug, "team": team.slug},
    )
    return template


def _clean_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise PromptInvalid("a prompt needs a name", param="name")
    if len(name) > 200:
        raise PromptInvalid("a name has at most 200 characters", param="name")
    return name.strip()


def _clean_description(description: Any) -> str:
    if description is None:
        return ""
    if not isinstance(description, str) or len(description) > 5000:
        raise PromptInvalid("description is a string of at most 5,000 characters", param="description")
    return description


@transaction.atomic
def update_draft(template: PromptTemplate, *, actor, actor_label: str = "", **changes: Any) -> PromptTemplate:
    """Change the draft (versions are untouched). Keys: name, description, alias, messages, variables,
    parameters, locked_parameters, output_schema, is_shared, is_private."""
    _require_manager(actor, template.team)
    allowed = set(DRAFT_FIELDS) | {"output_schema", "is_shared", "is_private"}
    unknown = set(changes) - allowed
    if unknown:
        name = sorted(unknown)[0]
        raise PromptInvalid(f"{name!r} cannot be changed here", param=name)
    for field, value in changes.items():
        require_storable(value, param=field)
    if "messages" in changes or "variables" in changes:
        messages = changes.get("messages", template.messages)
        # New text without new specs keeps the specs of the variables it still uses.
        variables = changes.get("variables")
        if variables is None:
            try:
                used = set(rendering.variables_in_messages(rendering.clean_messages(messages)))
            except rendering.PromptError as exc:
                raise PromptInvalid(exc.message, param=exc.param) from exc
            variables = {name: spec for name, spec in template.variables.items() if name in used}
        template.messages, template.variables = clean_text_and_variables(messages, variables)
    if "name" in changes:
        template.name = _clean_name(changes["name"])
    if "description" in changes:
        template.description = _clean_description(changes["description"])
    if "alias" in changes:
        template.alias = clean_alias(changes["alias"])
    if "parameters" in changes:
        template.parameters = clean_parameters(changes["parameters"])
    if "locked_parameters" in changes:
        template.locked_parameters = clean_locked(changes["locked_parameters"])
    if "output_schema" in changes:
        template.output_schema = clean_output_schema(changes["output_schema"])
    for flag in ("is_shared", "is_private"):
        if flag in changes:
            if not isinstance(changes[flag], bool):
                raise PromptInvalid(f"{flag} is true or false", param=flag)
            setattr(template, flag, changes[flag])
    template.save()
    audit.record(
        tenant=template.tenant,
        actor=actor,
        actor_label=actor_label,
        action="prompt.updated",
        target=template,
        details={"fields": sorted(changes)},
    )
    return template


@transaction.atomic
def set_products(template: PromptTemplate, *, actor, products: Any, actor_label: str = "") -> PromptTemplate:
    """Bundle the template in exactly these API products (ids or Product rows) of its own tenant. Bundling
    changes what a product offers: the template's managers may do it only if they administer the tenant."""
    _require_manager(actor, template.team)
    if not _is_operator(actor) and not roles.is_tenant_admin(actor, template.tenant):
        raise NotAllowed("only the tenant's admins can bundle prompts in its products")
    if not isinstance(products, list) or len(products) > MAX_PRODUCTS:
        raise PromptInvalid(f"products is a list of at most {MAX_PRODUCTS} product ids", param="products")
    own = Product.objects.filter(tenant_id=template.tenant_id)
    chosen = []
    for index, product in enumerate(products):
        product_id = product.pk if isinstance(product, Product) else product
        if isinstance(product_id, bool) or not isinstance(product_id, int) or not 1 <= product_id < 2**63:
            raise PromptInvalid("a product is named by its id", param=f"products[{index}]")
        found = own.filter(pk=product_id).first()
        if found is None:  # another tenant's product is refused like one that does not exist
            raise PromptInvalid(f"no product {product_id} in this tenant", param=f"products[{index}]")
        chosen.append(found)
    before = set(template.products.values_list("pk", flat=True))
    if before == {product.pk for product in chosen}:
        return template
    template.products.set(chosen)
    template.save(update_fields=["updated_at"])  # the m2m signal records the feed change; this dates it
    audit.record(
        tenant=template.tenant,
        actor=actor,
        actor_label=actor_label,
        action="prompt.updated",
        target=template,
        details={"fields": ["products"], "products": sorted(product.pk for product in chosen)},
    )
    return template


# --- versions ----------------------------------------------------------------------------------------------


def frozen_of(source) -> dict:
    """What a version freezes, from a template (its draft) or a version."""
    return {field: getattr(source, field) for field in FROZEN_FIELDS}


def frozen_text(frozen: Mapping) -> list[str]:
    """A version as lines a reader can diff: each message's text as written, then the settings as JSON."""
    lines = [f"alias: {frozen['alias']}"]
    for index, message in enumerate(frozen["messages"]):
        lines.append(f"--- message {index + 1} ({message['role']})")
        lines.extend(message["content"].splitlines() or [""])
    for field in ("variables", "parameters", "locked_parameters", "output_schema"):
        lines.append(f"--- {field}")
        lines.extend(json.dumps(frozen[field], indent=2, sort_keys=True, ensure_ascii=False).splitlines())
    return lines


def diff_of(before: Mapping | None, after: Mapping, *, before_label: str, after_label: str) -> str:
    if before is None:
        return ""
    return "\n".join(
        difflib.unified_diff(frozen_text(before), frozen_text(after), before_label, after_label, lineterm="")
    )


@transaction.atomic
def create_version(template: PromptTemplate, *, actor, message: Any = "", actor_label: str = "") -> PromptVersion:
    """Freeze the draft as the next version. A draft equal to the latest version is refused: nothing to freeze."""
    _require_manager(actor, template.team)
    if message is None:
        message = ""
    if not isinstance(message, str) or len(message) > 500:
        raise PromptInvalid("a version's message is a string of at most 500 characters", param="message")
    require_storable(message, param="message")
    # Lock the template: two concurrent freezes must not take the same number.
    template = PromptTemplate.objects.select_for_update().get(pk=template.pk)
    latest = template.versions.order_by("-number").first()
    frozen = frozen_of(template)
    if latest is not None and frozen_of(latest) == frozen:
        raise PromptInvalid(f"the draft is the same as version {latest.number}: nothing to freeze", param="draft")
    number = (latest.number if latest else 0) + 1
    version = PromptVersion.objects.create(
        template=template,
        number=number,
        message=message.strip(),
        diff=diff_of(
            frozen_of(latest) if latest else None,
            frozen,
            before_label=f"{template.slug}@{number - 1}",
            after_label=f"{template.slug}@{number}",
        ),
        author=actor if getattr(actor, "is_authenticated", False) else None,
        author_label=actor_label or getattr(actor, "email", "") or str(actor or ""),
        **frozen,
    )
    audit.record(
        tenant=template.tenant,
        actor=actor,
        actor_label=actor_label,
        action="prompt.version_created",
        target=template,
        details={"slug": template.slug, "version": number},
    )
    return version


# --- environments and publications -------------------------------------------------------------------------


def environments_of(tenant) -> list[str]:
    added = PromptEnvironment.objects.filter(tenant=tenant).order_by("name").values_list("name", flat=True)
    return list(DEFAULT_ENVIRONMENTS) + [name for name in added if name not in DEFAULT_ENVIRONMENTS]


@transaction.atomic
def add_environment(tenant, *, actor, name: Any, actor_label: str = "") -> PromptEnvironment:
    if not _is_operator(actor) and not roles.is_tenant_admin(actor, tenant):
        raise NotAllowed("only the tenant's admins can add environments")
    if not isinstance(name, str) or not name.strip():
        raise PromptInvalid("an environment needs a name", param="name")
    name = name.strip().lower()
    if len(name) > 32 or not all(c.isascii() and (c.isalnum() or c in "-_") for c in name):
        raise PromptInvalid("an environment's name is letters, digits, - and _ (at most 32)", param="name")
    if name in environments_of(tenant):
        raise PromptInvalid(f"the environment {name!r} exists already", param="name")
    if PromptEnvironment.objects.filter(tenant=tenant).count() >= MAX_ENVIRONMENTS:
        raise PromptInvalid(f"a tenant has at most {MAX_ENVIRONMENTS} environments of its own", param="name")
    environment = PromptEnvironment.objects.create(tenant=tenant, name=name)
    audit.record(
        tenant=tenant,
        actor=actor,
        actor_label=actor_label,
        action="prompt.environment_added",
        target=environment,
        details={"name": name},
    )
    return environment


def current_publication(template: PromptTemplate, environment: str) -> PromptPublication | None:
    return template.publications.filter(environment=environment, is_current=True).first()


def _clean_environment(template: PromptTemplate, environment: Any) -> str:
    if not isinstance(environment, str) or environment not in environments_of(template.tenant):
        shown = str(environment)[:32]
        raise PromptInvalid(
            f"no environment {shown!r}: one of {', '.join(environments_of(template.tenant))}", param="environment"
        )
    return environment


def _clean_version_number(template: PromptTemplate, version: Any, *, param: str) -> int:
    if isinstance(version, str) and version.isdigit() and len(version) < 10:
        version = int(version)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise PromptInvalid("a version is a positive integer", param=param)
    if not template.versions.filter(number=version).exists():
        raise PromptInvalid(f"{template.slug} has no version {version}", param=param)
    return version


def clean_split(template: PromptTemplate, split: Any) -> dict[str, int]:
    """{"3": 90, "4": 10}: two versions (or one at 100), whole percentages that sum to 100."""
    if not isinstance(split, dict) or not 1 <= len(split) <= 2:
        raise PromptInvalid('a split maps one or two versions to percentages, e.g. {"3": 90, "4": 10}', param="split")
    cleaned: dict[str, int] = {}
    for version, weight in split.items():
        number = _clean_version_number(template, version, param=f"split.{str(version)[:10]}")
        if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= 100:
            raise PromptInvalid("each percentage is a whole number from 1 to 100", param=f"split.{number}")
        cleaned[str(number)] = weight
    if len(cleaned) != len(split):
        raise PromptInvalid("a split names each version once", param="split")
    if sum(cleaned.values()) != 100:
        raise PromptInvalid("a split's percentages sum to 100", param="split")
    return dict(sorted(cleaned.items(), key=lambda item: int(item[0])))


def _publish(template, *, actor, environment, split, action, replaced_to=None, actor_label="") -> PromptPublication:
    template = PromptTemplate.objects.select_for_update().get(pk=template.pk)
    current = current_publication(template, environment)
    if current is not None:
        current.is_current = False
        current.save(update_fields=["is_current"])
    publication = PromptPublication.objects.create(
        template=template,
        environment=environment,
        split=split,
        action=action,
        # A rollback's row replaces what the restored row had replaced: rolling back again goes further back.
        replaced=replaced_to if action == PromptPublication.Action.ROLLED_BACK else current,
        published_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    audit.record(
        tenant=template.tenant,
        actor=actor,
        actor_label=actor_label,
        action=f"prompt.{action}",
        target=template,
        details={
            "slug": template.slug,
            "environment": environment,
            "split": split,
            "before": current.split if current else None,
        },
    )
    return publication


@transaction.atomic
def publish(template: PromptTemplate, *, actor, environment: Any, version: Any, actor_label: str = ""):
    """Serve one version in this environment."""
    _require_manager(actor, template.team)
    environment = _clean_environment(template, environment)
    number = _clean_version_number(template, version, param="version")
    return _publish(
        template,
        actor=actor,
        environment=environment,
        split={str(number): 100},
        action=PromptPublication.Action.PUBLISHED,
        actor_label=actor_label,
    )


@transaction.atomic
def publish_split(template: PromptTemplate, *, actor, environment: Any, split: Any, actor_label: str = ""):
    """Serve two versions in this environment, by percentage of calls."""
    _require_manager(actor, template.team)
    environment = _clean_environment(template, environment)
    split = clean_split(template, split)
    action = PromptPublication.Action.SPLIT if len(split) > 1 else PromptPublication.Action.PUBLISHED
    return _publish(template, actor=actor, environment=environment, split=split, action=action, actor_label=actor_label)


@transaction.atomic
def rollback(template: PromptTemplate, *, actor, environment: Any, actor_label: str = ""):
    """Back to what this environment served before its current publication."""
    _require_manager(actor, template.team)
    environment = _clean_environment(template, environment)
    current = current_publication(template, environment)
    if current is None:
        raise PromptInvalid(f"nothing is published in {environment}", param="environment")
    previous = current.replaced
    if previous is None:
        raise PromptInvalid(f"{environment} has no earlier publication to roll back to", param="environment")
    return _publish(
        template,
        actor=actor,
        environment=environment,
        split=previous.split,
        action=PromptPublication.Action.ROLLED_BACK,
        replaced_to=previous.replaced,
        actor_label=actor_label,
    )
