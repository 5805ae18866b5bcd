"""Checking a catalogue document: shape, values and upstream safety, every problem collected with its path.

Nothing here touches the database. References between sections (a deployment's provider, an alias's
deployments) are only collected; the importer resolves them against the file and the rows already stored.
"""

import difflib
import re
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import urlsplit

from django.conf import settings

from routing.catalogue.fields import Entry, Reference
from routing.engine.policy import parse_policy, policy_to_dict, semantic_targets
from routing.models import Deployment, ModelAlias, Provider
from routing.providers.registry import KINDS
from routing.ssrf import UnsafeUpstream, check_base_url

SECTIONS = ("providers", "deployments", "aliases")
CAPABILITIES = ("chat", "embeddings", "tools", "vision", "json")
PROVIDER_KEYS = (
    "name",
    "kind",
    "base_url",
    "api_key",
    "api_key_env",
    "api_key_stored",
    "api_version",
    "timeout_s",
    "connect_timeout_s",
    "enabled",
)
DEPLOYMENT_KEYS = (
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
    "enabled",
)
ALIAS_KEYS = ("name", "description", "deployments", "routing")
SLUG_MAX_LENGTH = 32  # a region or a tag
MAX_TAGS = 20

# (pattern, what a mismatch is told)
_SLUG = (re.compile(r"[-a-zA-Z0-9_]+"), "must contain only letters, digits, hyphens and underscores")
_ENV_NAME = (re.compile(r"[A-Za-z_][A-Za-z0-9_]*"), "must be an environment variable name (letters, digits, _)")


class CatalogueError(Exception):
    """The catalogue was refused; `errors` holds every problem as "path: message", in document order."""

    def __init__(self, errors: list[str], *, source: str = "<data>") -> None:
        self.errors = list(errors)
        self.source = source
        super().__init__(f"{source}: {len(self.errors)} error(s) in the catalogue; nothing was imported")


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    kind: str
    base_url: str
    api_key: str | None = field(repr=False)  # None: keep whatever key is stored
    api_key_env: str | None
    api_version: str
    timeout_s: float
    connect_timeout_s: float
    is_enabled: bool
    # The base URL is the one already stored for this provider, so it was not checked again (see
    # _checked_base_url); the importer makes sure it is still the stored one once the row is locked.
    is_base_url_kept: bool = False


@dataclass(frozen=True)
class DeploymentSpec:
    name: str
    provider: str
    model: str
    input_per_1m: Decimal
    output_per_1m: Decimal
    cached_input_per_1m: Decimal | None
    context_window: int | None
    max_output_tokens: int | None
    capabilities: tuple[str, ...]
    quality: float | None
    region: str
    tags: tuple[str, ...]
    rpm_limit: int | None
    tpm_limit: int | None
    is_enabled: bool
    speaks_responses: bool = False


@dataclass(frozen=True)
class AliasSpec:
    name: str
    description: str
    deployments: tuple[str, ...]  # priority order: the first is tried first
    routing: dict  # as policy_to_dict writes it; {} routes by priority


@dataclass
class CheckedCatalogue:
    """Valid entries as specs; `errors` is empty only when every entry was valid."""

    providers: list[ProviderSpec] = field(default_factory=list)
    deployments: list[DeploymentSpec] = field(default_factory=list)
    aliases: list[AliasSpec] = field(default_factory=list)
    # Names each section of the file defines, valid entries or not, so that one bad entry does not also
    # produce an "unknown" error at every place that refers to it.
    declared: dict[str, set[str]] = field(default_factory=lambda: {section: set() for section in SECTIONS})
    references: list[Reference] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def check_catalogue(data: object, *, stored_base_urls: dict[str, str] | None = None) -> CheckedCatalogue:
    """`stored_base_urls` (provider name -> base URL already stored) lets a file re-import the URLs it exported."""
    checked = CheckedCatalogue()
    stored_base_urls = stored_base_urls or {}
    if not isinstance(data, dict):
        found = "empty" if data is None else f"a {type(data).__name__}"
        checked.errors.append(f"the catalogue must be a mapping of providers, deployments and aliases, not {found}")
        return checked
    for key in data:
        if key not in SECTIONS:
            checked.errors.append(f"{key}: unknown section; {_expected(key, SECTIONS)}")
    sections = (
        ("providers", PROVIDER_KEYS, lambda entry: _check_provider(entry, stored_base_urls), checked.providers),
        ("deployments", DEPLOYMENT_KEYS, _check_deployment, checked.deployments),
        ("aliases", ALIAS_KEYS, _check_alias, checked.aliases),
    )
    for section, allowed_keys, check_entry, specs in sections:
        raw_entries = data.get(section)
        if raw_entries is None:
            continue
        if not isinstance(raw_entries, list):
            checked.errors.append(f"{section}: must be a list")
            continue
        defined_at: dict[str, str] = {}
        for index, raw in enumerate(raw_entries):
            path = f"{section}[{index}]"
            if not isinstance(raw, dict):
                checked.errors.append(f"{path}: must be a mapping")
                continue
            entry = Entry(raw, path, errors=checked.errors, references=checked.references)
            for key in raw:
                if key not in allowed_keys:
                    entry.fail(key, f"unknown key; {_expected(key, allowed_keys)}")
            spec = check_entry(entry)
            name = raw.get("name")
            if isinstance(name, str) and name:
                if name in defined_at:
                    entry.fail("name", f"{name!r} is already defined at {defined_at[name]}")
                else:
                    defined_at[name] = path
                    checked.declared[section].add(name)
            if entry.is_valid:
                specs.append(spec)
    return checked


def _expected(key: object, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(key), allowed, n=1)
    return f"did you mean {close[0]!r}?" if close else f"expected one of {', '.join(allowed)}"


def _max_length(model, field_name: str) -> int:
    return model._meta.get_field(field_name).max_length


def _default(model, field_name: str):
    return model._meta.get_field(field_name).default


def _check_provider(entry: Entry, stored_base_urls: dict[str, str]) -> ProviderSpec:
    # Export writes api_key_stored for a key it will not reveal; importing it changes nothing.
    entry.boolean("api_key_stored", default=False)
    name = entry.identifier("name", max_length=_max_length(Provider, "name"), pattern=_SLUG)
    base_url, is_base_url_kept = _checked_base_url(entry, stored_base_url=stored_base_urls.get(name or ""))
    return ProviderSpec(
        name=name,
        kind=entry.choice("kind", KINDS),
        base_url=base_url,
        is_base_url_kept=is_base_url_kept,
        api_key=_checked_api_key(entry),
        api_key_env=entry.identifier(
            "api_key_env", max_length=_max_length(Provider, "api_key_env"), pattern=_ENV_NAME, required=False
        ),
        api_version=entry.text("api_version", max_length=_max_length(Provider, "api_version")),
        timeout_s=entry.seconds("timeout_s", default=_default(Provider, "timeout_s")),
        connect_timeout_s=entry.seconds("connect_timeout_s", default=_default(Provider, "connect_timeout_s")),
        is_enabled=entry.boolean("enabled", default=True),
    )


def _checked_api_key(entry: Entry) -> str | None:
    api_key = entry.raw.get("api_key")
    if api_key is None:
        return None
    # Messages about the key never quote it.
    if not isinstance(api_key, str) or not api_key.strip():
        entry.fail("api_key", "must be a non-empty string; leave it out to keep the stored key")
        return None
    if api_key != api_key.strip():
        entry.fail("api_key", "must not start or end with whitespace")
    if entry.raw.get("api_key_env") is not None:
        entry.fail("api_key", "give api_key or api_key_env, not both")
    return api_key


def _checked_base_url(entry: Entry, *, stored_base_url: str | None) -> tuple[str, bool]:
    """The URL, and whether it is the provider's stored one and so was let through without the address check."""
    url = entry.identifier("base_url", max_length=_max_length(Provider, "base_url"))
    if url is None:
        return "", False
    url = url.rstrip("/")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- parsing the port is what validates it
    except ValueError:
        entry.fail("base_url", "not a valid URL")
        return url, False
    if parts.query or parts.fragment:
        entry.fail("base_url", "must not have a query string or fragment")
    if url == stored_base_url:
        # Importing back what export wrote reaches nothing the provider does not reach already. The demo's own
        # provider is on loopback and `make run` allows that only for the server it starts, so without this a
        # newcomer's first export and import round trip was refused.
        return url, True
    try:
        check_base_url(
            url,
            allow_loopback=settings.TOLLWAY_ALLOW_LOOPBACK_UPSTREAMS,
            allow_private=settings.TOLLWAY_ALLOW_PRIVATE_UPSTREAMS,
        )
    except UnsafeUpstream as exc:
        entry.fail("base_url", str(exc))
    return url, False


def _check_deployment(entry: Entry) -> DeploymentSpec:
    provider = entry.identifier("provider", max_length=_max_length(Provider, "name"))
    if provider is not None:
        entry.refers_to("provider", section="providers", name=provider)
    return DeploymentSpec(
        name=entry.identifier("name", max_length=_max_length(Deployment, "name"), pattern=_SLUG),
        provider=provider,
        model=entry.identifier("model", max_length=_max_length(Deployment, "model")),
        input_per_1m=entry.price("input_per_1m"),
        output_per_1m=entry.price("output_per_1m"),
        cached_input_per_1m=entry.price("cached_input_per_1m", required=False),
        context_window=entry.count("context_window"),
        max_output_tokens=entry.count("max_output_tokens"),
        capabilities=entry.names("capabilities", choices=CAPABILITIES, required=False),
        quality=entry.fraction("quality"),
        region=entry.slug("region", max_length=SLUG_MAX_LENGTH),
        tags=entry.slugs("tags", max_count=MAX_TAGS, max_length=SLUG_MAX_LENGTH),
        rpm_limit=entry.count("rpm_limit"),
        tpm_limit=entry.count("tpm_limit"),
        is_enabled=entry.boolean("enabled", default=True),
        speaks_responses=entry.boolean("speaks_responses", default=False),
    )


def _check_alias(entry: Entry) -> AliasSpec:
    name = entry.identifier("name", max_length=_max_length(ModelAlias, "name"))
    deployments = entry.names("deployments")
    for index, deployment in enumerate(deployments):
        entry.refers_to(f"deployments[{index}]", section="deployments", name=deployment)
    return AliasSpec(
        name=name,
        description=entry.text("description", max_length=None),
        deployments=deployments,
        routing=_checked_routing(entry, alias=name, deployments=deployments),
    )


def _checked_routing(entry: Entry, *, alias: str | None, deployments: tuple[str, ...]) -> dict:
    """The `routing:` mapping in the form it is stored and exported in. parse_policy checks it all but the
    fallbacks, which name other aliases: those are collected as references, resolved by the importer."""
    policy, problems = parse_policy(entry.raw.get("routing"), path=f"{entry.path}.routing", deployments=deployments)
    for problem in problems:
        entry.errors.append(problem)
        entry.is_valid = False
    if not problems:
        _check_verifier_urls(entry, policy)
    # Paths count in the list as written; parse_policy has dropped repeats from policy.fallbacks.
    written = entry.raw["routing"].get("fallbacks", []) if policy.fallbacks else []
    seen = set()
    for index, fallback in enumerate(written):
        if fallback in seen:
            continue
        seen.add(fallback)
        if len(fallback) > _max_length(ModelAlias, "name"):
            entry.fail(f"routing.fallbacks[{index}]", f"must be at most {_max_length(ModelAlias, 'name')} characters")
        elif fallback == alias:
            entry.fail(f"routing.fallbacks[{index}]", "an alias cannot fall back to itself")
        else:
            entry.refers_to(f"routing.fallbacks[{index}]", section="aliases", name=fallback)
    if not problems:
        _check_semantic_targets(entry, policy, alias=alias, deployments=deployments)
    return policy_to_dict(policy) or {}


def _check_semantic_targets(entry: Entry, policy, *, alias: str | None, deployments: tuple[str, ...]) -> None:
    """A semantic route (or the default) names one of the alias's deployments, or else another alias."""
    for where, name in semantic_targets(policy):
        if name in deployments:
            continue
        if name == alias:
            entry.fail(f"routing.{where}", "an alias cannot route to itself: name one of its deployments")
        elif len(name) > _max_length(ModelAlias, "name"):
            entry.fail(f"routing.{where}", f"must be at most {_max_length(ModelAlias, 'name')} characters")
        else:
            entry.refers_to(f"routing.{where}", section="aliases", name=name)


def _check_verifier_urls(entry: Entry, policy) -> None:
    """A cascade's webhook verifiers obey the upstreams' SSRF rules (routing/ssrf.py); checked again per call."""
    if policy.cascade is None:
        return
    for index, check in enumerate(policy.cascade.checks):
        if check.type != "webhook" or not check.url:
            continue
        try:
            check_base_url(
                check.url,
                allow_loopback=settings.TOLLWAY_ALLOW_LOOPBACK_UPSTREAMS,
                allow_private=settings.TOLLWAY_ALLOW_PRIVATE_UPSTREAMS,
            )
        except UnsafeUpstream as exc:
            entry.fail(f"routing.cascade.checks[{index}].url", str(exc).replace("base_url", "the verifier URL"))
