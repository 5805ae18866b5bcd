"""Reads what the data plane needs from the database: the catalogue, limits, budgets and prompts as wholes
(small), keys one at a time or by id (there may be millions), and the change feed. Every function here runs on
the database thread (config/db_thread.py), never on the event loop."""

import logging
import os
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from django.db import connection
from django.db.models import Max, Prefetch, Q

from billing.models import Budget
from core import prompts as prompt_values
from core.values import BudgetRule, LearnedPolicy, ModelPrice, Principal, RateRule, RoutingPolicy, Target
from portal.models import APIKey, Product, Subscription, Team
from portal.prompts.models import PromptEnvironment, PromptPublication, PromptTemplate, PromptVersion
from routing.catalogue.policies import stored_policy
from routing.control_plane import feed
from routing.credentials import CredentialError, decrypt_secret
from routing.engine import learned
from routing.models import AliasDeployment, ChangeEvent, Deployment, LearnedRouter, ModelAlias, Provider

log = logging.getLogger(__name__)


# --- the change feed -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedPage:
    latest: int  # the feed's last committed version
    changes: tuple[tuple[int, str, int | None], ...] = ()  # (version, kind, object id), in order
    must_rebuild: bool = False  # too far behind, the feed was pruned past us, or it restarted below us


def latest_version() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT version FROM routing_changecounter WHERE id = 1")
        row = cursor.fetchone()
    return row[0] if row else 0


def read_changes(after: int, *, limit: int) -> FeedPage:
    """The changes after version `after`. One single-row read when nothing changed (the idle case)."""
    latest = latest_version()
    if latest == after:
        return FeedPage(latest=latest)
    if latest < after or latest - after > limit:
        return FeedPage(latest=latest, must_rebuild=True)
    rows = tuple(
        ChangeEvent.objects.filter(version__gt=after, version__lte=latest)
        .order_by("version")
        .values_list("version", "kind", "object_id")
    )
    # Versions have no gaps (a rolled-back writer rolls its version back too), so a hole means pruned rows.
    if not rows or rows[0][0] != after + 1 or len(rows) != latest - after:
        return FeedPage(latest=latest, must_rebuild=True)
    return FeedPage(latest=latest, changes=rows)


# --- keys ------------------------------------------------------------------------------------------------------

_interned: dict = {}


def _intern(value):
    """One shared object for equal names, alias sets and grants: thousands of keys of one team cost one copy."""
    if len(_interned) > 200_000:
        _interned.clear()
    return _interned.setdefault((type(value), value), value)


def _team_grants(team_ids: set[int]) -> tuple[dict[int, list[int]], dict[int, frozenset[str]]]:
    """Active subscriptions of these teams (oldest first), and the aliases each grants. Aliases are read per
    product, not per subscription: a thousand teams on one product cost one copy of its alias list, not a
    thousand (rows of subscriptions times aliases made a warm start's peak memory tens of MB)."""
    team_subscriptions: dict[int, list[int]] = {}
    product_of: dict[int, int] = {}
    if not team_ids:
        return team_subscriptions, {}
    active = Subscription.objects.filter(team_id__in=team_ids, status=Subscription.Status.ACTIVE).order_by("pk")
    for subscription_id, team_id, product_id in active.values_list("pk", "team_id", "product_id"):
        team_subscriptions.setdefault(team_id, []).append(subscription_id)
        product_of[subscription_id] = product_id
    aliases_of_product: dict[int, set[str]] = {product_id: set() for product_id in set(product_of.values())}
    granted = Product.aliases.through.objects.filter(product_id__in=aliases_of_product)
    for product_id, alias in granted.values_list("product_id", "modelalias__name"):
        aliases_of_product[product_id].add(alias)
    aliases = {product_id: _intern(frozenset(names)) for product_id, names in aliases_of_product.items()}
    return team_subscriptions, {pk: aliases[product_id] for pk, product_id in product_of.items()}


def _principals(keys) -> dict[int, Principal]:
    keys = list(
        keys.select_related("team__tenant").prefetch_related(
            Prefetch("subscriptions", queryset=Subscription.objects.only("pk"))
        )
    )
    team_subscriptions, aliases_of = _team_grants({k.team_id for k in keys if k.source == APIKey.Source.PORTAL})
    found = {}
    for key in keys:
        grants: tuple[tuple[int, frozenset[str]], ...] = ()
        if key.source == APIKey.Source.PORTAL:
            # Portal keys reach only what their team's active subscriptions grant (the oldest grant wins).
            scoped = sorted(s.pk for s in key.subscriptions.all()) or team_subscriptions.get(key.team_id, [])
            grants = _intern(tuple((pk, aliases_of[pk]) for pk in scoped if pk in aliases_of))
            allowed = frozenset().union(*(aliases for _, aliases in grants))
        else:
            allowed = frozenset(key.allowed_aliases) if key.allowed_aliases else None
        found[key.pk] = Principal(
            key_id=key.pk,
            key_prefix=key.prefix,
            secret_hash=key.secret_hash,
            tenant_id=key.team.tenant_id,
            tenant_name=_intern(key.team.tenant.name),
            team_id=key.team_id,
            team_name=_intern(key.team.name),
            allowed_aliases=_intern(allowed) if allowed is not None else None,
            expires_at=key.expires_at.timestamp() if key.expires_at else None,
            is_revoked=key.is_revoked,
            rpm_limit=key.rpm_limit,
            tpm_limit=key.tpm_limit,
            allowed_regions=_residency_regions(key.team.allowed_regions, key.allowed_regions),
            required_tags=_intern(frozenset(key.team.required_tags or ()) | frozenset(key.required_tags or ())),
            grants=grants,
            stores_bodies=key.team.stores_bodies,
        )
    return found


def _residency_regions(team_regions: list[str], key_regions: list[str]) -> frozenset[str] | None:
    """The key narrows its team: both lists set -> where they overlap (possibly nowhere); else whichever is set;
    neither -> any region (None)."""
    if team_regions and key_regions:
        return _intern(frozenset(team_regions) & frozenset(key_regions))
    if team_regions or key_regions:
        return _intern(frozenset(team_regions or key_regions))
    return None


def principals_by_hash(secret_hashes: list[str]) -> dict[str, Principal]:
    """The keys with these hashes, by hash (revoked ones too: they answer "revoked", not "incorrect")."""
    found = _principals(APIKey.objects.filter(secret_hash__in=secret_hashes))
    return {principal.secret_hash: principal for principal in found.values()}


def principals_by_id(key_ids: Iterable[int]) -> dict[int, Principal | None]:
    """These keys as they are now; None for a key that no longer exists."""
    key_ids = list(key_ids)
    found: dict[int, Principal | None] = dict.fromkeys(key_ids)
    for start in range(0, len(key_ids), 2000):
        found.update(_principals(APIKey.objects.filter(pk__in=key_ids[start : start + 2000])))
    return found


def recently_used_key_ids(*, since, limit: int) -> list[int]:
    """Live keys used since then, most recent first: what a starting process reads ahead."""
    keys = APIKey.objects.filter(is_revoked=False, last_used_at__gte=since).order_by("-last_used_at")
    return list(keys.values_list("pk", flat=True)[:limit])


def keys_have_limits(key_ids: Iterable[int] | None = None) -> bool:
    """Does any live key (of these) have its own RPM/TPM? Readiness needs a limits store only then."""
    keys = APIKey.objects.filter(is_revoked=False).filter(Q(rpm_limit__isnull=False) | Q(tpm_limit__isnull=False))
    if key_ids is not None:
        keys = keys.filter(pk__in=list(key_ids))
    return keys.exists()


# --- limits, budgets -------------------------------------------------------------------------------------------


def team_limits(team_ids: Iterable[int] | None = None) -> dict[int, RateRule]:
    teams = Team.objects.filter(Q(rpm_limit__isnull=False) | Q(tpm_limit__isnull=False))
    if team_ids is not None:
        teams = teams.filter(pk__in=list(team_ids))
    return {pk: RateRule(rpm=rpm, tpm=tpm) for pk, rpm, tpm in teams.values_list("pk", "rpm_limit", "tpm_limit")}


def subscription_limits(
    subscription_ids: Iterable[int] | None = None, *, product_ids: Iterable[int] = ()
) -> dict[int, RateRule]:
    """Active subscriptions' own RPM/TPM where set, else their product's defaults (only those with a limit)."""
    active = Subscription.objects.filter(status=Subscription.Status.ACTIVE)
    if subscription_ids is not None:
        active = active.filter(Q(pk__in=list(subscription_ids)) | Q(product_id__in=list(product_ids)))
    limits = {}
    rows = active.values_list("pk", "rpm_limit", "tpm_limit", "product__default_rpm", "product__default_tpm")
    for pk, rpm, tpm, default_rpm, default_tpm in rows:
        rule = RateRule(rpm=rpm if rpm is not None else default_rpm, tpm=tpm if tpm is not None else default_tpm)
        if rule.rpm is not None or rule.tpm is not None:
            limits[pk] = rule
    return limits


def budget_rules(budget_ids: Iterable[int] | None = None) -> dict[int, BudgetRule]:
    budgets = Budget.objects.filter(is_active=True).order_by("pk")
    if budget_ids is not None:
        budgets = budgets.filter(pk__in=list(budget_ids))
    return {
        budget.pk: BudgetRule(
            budget_id=budget.pk,
            scope=budget.scope,
            target_id=budget.target_id,
            period=budget.period,
            limit_usd=budget.limit_usd,
            limit_tokens=budget.limit_tokens,
            action=budget.action,
            downgrade_alias=budget.downgrade_alias,
            thresholds=tuple(sorted(int(t) for t in budget.thresholds or ())),
        )
        for budget in budgets
    }


# --- the catalogue ---------------------------------------------------------------------------------------------


def _provider_key(provider: Provider) -> str:
    if provider.api_key_env:
        # Operators may keep provider keys in the environment instead of the database.
        return os.environ.get(provider.api_key_env, "")
    try:
        return decrypt_secret(provider.api_key_encrypted)
    except CredentialError:
        log.error("provider %s: credential cannot be decrypted; check TOLLWAY_FERNET_KEYS", provider.name)
        return ""


def _price_of(deployment: Deployment) -> ModelPrice:
    return ModelPrice(
        input_per_million=deployment.input_per_1m,
        output_per_million=deployment.output_per_1m,
        cached_input_per_million=deployment.cached_input_per_1m,
    )


class Catalogue(NamedTuple):
    aliases: dict[str, tuple[Target, ...]]  # alias -> its enabled deployments in priority order
    baselines: dict[str, ModelPrice]  # alias -> the price savings are measured against
    policies: dict[str, RoutingPolicy]  # alias -> how it routes; only aliases with a `routing:` of their own


def catalogue() -> Catalogue:
    provider_keys: dict[int, str] = {}
    aliases: dict[str, list[Target]] = {}
    routes = AliasDeployment.objects.select_related("alias", "deployment__provider").filter(
        deployment__is_enabled=True, deployment__provider__is_enabled=True
    )
    for route in routes.order_by("alias_id", "priority", "id"):
        deployment, provider = route.deployment, route.deployment.provider
        if provider.pk not in provider_keys:
            provider_keys[provider.pk] = _provider_key(provider)
        target = Target(
            deployment=deployment.name,
            provider=provider.name,
            kind=provider.kind,
            base_url=provider.base_url.rstrip("/"),
            model=deployment.model,
            price=_price_of(deployment),
            api_key=provider_keys[provider.pk],
            api_version=provider.api_version,
            connect_timeout_s=provider.connect_timeout_s,
            timeout_s=provider.timeout_s,
            max_output_tokens=deployment.max_output_tokens,
            context_window=deployment.context_window,
            capabilities=frozenset(deployment.capabilities or ()),
            quality=deployment.quality,
            region=deployment.region,
            tags=frozenset(deployment.tags or ()),
            rpm_limit=deployment.rpm_limit,
            tpm_limit=deployment.tpm_limit,
            speaks_responses=deployment.speaks_responses,
        )
        aliases.setdefault(route.alias.name, []).append(target)
    # Each alias's chosen baseline deployment, else its most expensive enabled one (by output, then input).
    chosen = ModelAlias.objects.filter(baseline_deployment__isnull=False).select_related("baseline_deployment")
    baselines = {alias.name: _price_of(alias.baseline_deployment) for alias in chosen}
    for alias, targets in aliases.items():
        if alias not in baselines:
            baselines[alias] = max(
                (t.price for t in targets), key=lambda p: (p.output_per_million, p.input_per_million)
            )
    return Catalogue({name: tuple(targets) for name, targets in aliases.items()}, baselines, _policies())


def _policies() -> dict[str, RoutingPolicy]:
    """Every alias's own `routing:` (stored as the importer checked it), parsed by the engine's parser."""
    stored = {pk: (name, routing) for pk, name, routing in ModelAlias.objects.values_list("pk", "name", "routing")}
    # Disabled deployments too: a weight may name one that is off for now.
    deployments: dict[int, list[str]] = {}
    every_route = AliasDeployment.objects.filter(alias_id__in=[pk for pk, (_, r) in stored.items() if r])
    for alias_id, name in every_route.order_by("priority", "id").values_list("alias_id", "deployment__name"):
        deployments.setdefault(alias_id, []).append(name)
    policies = {}
    for pk, (name, routing) in stored.items():
        if not routing:
            continue  # routes by priority: DEFAULT_POLICY, which the engine uses for an alias not listed
        policy, problems = stored_policy(routing, deployments=tuple(deployments.get(pk, ())))
        if problems:
            # Only a write past the importer does this (a deployment removed in the admin, leaving its weight):
            # what parses still applies, and the operator is told what did not.
            log.warning("alias %s: its routing is not all valid (%s); applying the rest", name, "; ".join(problems))
        policies[name] = policy
    learned_aliases = {
        pk: name for pk, (name, _) in stored.items() if policies.get(name, RoutingPolicy()).strategy == "learned"
    }
    for alias_id, model in _latest_learned_models(learned_aliases).items():
        policy = policies[learned_aliases[alias_id]]
        policies[learned_aliases[alias_id]] = replace(
            policy, learned=replace(policy.learned or LearnedPolicy(), model=model)
        )
    return policies


# (router row id, created_at) -> its parsed model: every catalogue change reloads the policies, but a model's
# weights only once. created_at too: a row id may come back after a rollback (tests) or a restored dump.
_learned_models: dict[tuple, learned.LearnedModel] = {}


def _latest_learned_models(aliases: dict[int, str]) -> dict[int, learned.LearnedModel]:
    """Each of these aliases' latest learned-router version, parsed (aliases never trained are absent)."""
    if not aliases:
        return {}
    latest = (
        LearnedRouter.objects.filter(alias_id__in=list(aliases))
        .order_by("alias_id", "-version")
        .values_list("pk", "created_at", "alias_id")
    )
    chosen: dict[int, tuple] = {}
    for pk, created_at, alias_id in latest:
        chosen.setdefault(alias_id, (pk, created_at))
    wanted = set(chosen.values())
    for key in set(_learned_models) - wanted:
        del _learned_models[key]
    missing = {pk for pk, created_at in wanted - set(_learned_models)}
    rows = LearnedRouter.objects.filter(pk__in=missing).values_list("pk", "created_at", "weights", "version")
    for pk, created_at, blob, version in rows:
        try:
            _learned_models[(pk, created_at)] = learned.from_bytes(bytes(blob), version=version)
        except (ValueError, zlib.error) as exc:
            log.error("learned router %s v%s cannot be read (%s); its alias routes by priority", pk, version, exc)
    return {alias_id: _learned_models[key] for alias_id, key in chosen.items() if key in _learned_models}


# --- prompts ---------------------------------------------------------------------------------------------------


def _frozen(row: dict) -> prompt_values.FrozenVersion:
    return prompt_values.FrozenVersion(
        number=row["number"],
        alias=row["alias"],
        messages=tuple(row["messages"]),
        specs=prompt_values.specs_from_dict(row["variables"] or {}),
        parameters=dict(row["parameters"] or {}),
        locked=frozenset(row["locked_parameters"] or ()),
        output_schema=row["output_schema"] or None,
    )


_VERSION_FIELDS = ("template_id", "number", "alias", "messages", "variables", "parameters", "locked_parameters")


def prompts() -> prompt_values.PromptCatalogue:
    """Every template with what its environments serve and the content of those versions only: a template may
    have hundreds of versions, but at most two per environment are served. Other versions are read on demand
    (prompt_version). Prompts change rarely, so any change reloads them all (one `prompt` change kind-wide)."""
    splits: dict[int, dict[str, dict[str, int]]] = {}
    wanted: set[tuple[int, int]] = set()
    current = PromptPublication.objects.filter(is_current=True).order_by("pk")
    for template_id, environment, split in current.values_list("template_id", "environment", "split"):
        splits.setdefault(template_id, {})[environment] = {str(k): int(v) for k, v in split.items()}
        wanted.update((template_id, int(number)) for number in split)
    versions: dict[int, dict[int, prompt_values.FrozenVersion]] = {}
    if wanted:
        # Two plain IN lists, not an OR per template: a few more rows than wanted at most (a number one template
        # serves, of another that serves a different one), dropped here.
        served = PromptVersion.objects.filter(
            template_id__in={t for t, _ in wanted}, number__in={n for _, n in wanted}
        ).values(*_VERSION_FIELDS, "output_schema")
        for row in served:
            if (row["template_id"], row["number"]) in wanted:
                versions.setdefault(row["template_id"], {})[row["number"]] = _frozen(row)
    latest = dict(
        PromptVersion.objects.values("template_id").annotate(latest=Max("number")).values_list("template_id", "latest")
    )
    products: dict[int, set[int]] = {}
    for template_id, product_id in PromptTemplate.products.through.objects.values_list(
        "prompttemplate_id", "product_id"
    ):
        products.setdefault(template_id, set()).add(product_id)
    by_slug = {}
    rows = PromptTemplate.objects.values_list("pk", "tenant_id", "team_id", "slug", "is_shared", "is_private")
    for pk, tenant_id, team_id, slug, is_shared, is_private in rows:
        by_slug[(tenant_id, slug)] = prompt_values.PublishedPrompt(
            template_id=pk,
            tenant_id=tenant_id,
            team_id=team_id,
            slug=slug,
            is_shared=is_shared,
            is_private=is_private,
            product_ids=frozenset(products.get(pk, ())),
            splits=splits.get(pk, {}),
            versions=versions.get(pk, {}),
            latest_version=latest.get(pk, 0),
        )
    # A tenant's own environments (beside dev, staging and prod), and any a publication names.
    environments: dict[int, set[str]] = {}
    for tenant_id, name in PromptEnvironment.objects.values_list("tenant_id", "name"):
        environments.setdefault(tenant_id, set()).add(name)
    for prompt in by_slug.values():
        environments.setdefault(prompt.tenant_id, set()).update(prompt.splits)
    bundling = {pid for ids in products.values() for pid in ids}
    by_product = {(pid, prompt.slug): prompt for prompt in by_slug.values() for pid in prompt.product_ids}
    return prompt_values.PromptCatalogue(
        by_slug=by_slug,
        by_product=by_product,
        environments={tenant_id: frozenset(names) for tenant_id, names in environments.items()},
        bundling_products=frozenset(bundling),
        bundling_subscriptions=bundling_subscriptions(product_ids=bundling),
    )


def bundling_subscriptions(
    *, product_ids: Iterable[int], subscription_ids: Iterable[int] | None = None
) -> dict[int, int]:
    """Subscriptions (of any status: keys' grants say which are active) to these products -> their product."""
    found = Subscription.objects.filter(product_id__in=list(product_ids))
    if subscription_ids is not None:
        found = found.filter(pk__in=list(subscription_ids))
    return dict(found.values_list("pk", "product_id"))


def prompt_version(template_id: int, number: int) -> prompt_values.FrozenVersion | None:
    """One version of a template, served or not (versions are immutable: a caller may keep it)."""
    row = PromptVersion.objects.filter(template_id=template_id, number=number).values(*_VERSION_FIELDS, "output_schema")
    found = row.first()
    return _frozen(found) if found else None


# --- what a batch of changes means -----------------------------------------------------------------------------


@dataclass(slots=True)
class Delta:
    """What changed, resolved against the database: new values for what changed and whom it concerns."""

    catalogue: Catalogue | None = None
    team_limits: dict[int, RateRule | None] = field(default_factory=dict)  # None: no limit any more
    subscription_limits: dict[int, RateRule | None] = field(default_factory=dict)
    budgets: dict[int, BudgetRule | None] = field(default_factory=dict)  # None: deleted or inactive
    key_ids: set[int] = field(default_factory=set)  # keys whose own row changed
    team_ids: set[int] = field(default_factory=set)  # teams whose keys' view changed (grants, names, tenant)
    every_cached_key: bool = False  # alias names changed: any portal key's grants may read differently
    keys_have_limits: bool = False  # a changed key has its own RPM/TPM now
    needs_rebuild: bool = False  # a kind-wide change of keys, limits or budgets
    prompts: prompt_values.PromptCatalogue | None = None  # every prompt, reloaded on any `prompt` change
    # Changed subscriptions to products that bundle a prompt -> their product (when prompts were not reloaded).
    bundling_subscriptions: dict[int, int] = field(default_factory=dict)


def resolve(
    changes: Iterable[tuple[int, str, int | None]], *, bundling_products: frozenset[int] = frozenset()
) -> Delta:
    """`bundling_products`: the products that bundle a prompt, as the process knows them."""
    by_kind: dict[str, set[int | None]] = {kind: set() for kind in feed.KINDS}
    for _, kind, object_id in changes:
        by_kind.setdefault(kind, set()).add(object_id)
    delta = Delta()
    # Catalogue and prompt changes are kind-wide by design (their rows reload as one), never a rebuild.
    if any(None in ids for kind, ids in by_kind.items() if kind not in (feed.CATALOGUE, feed.PROMPT)):
        delta.needs_rebuild = True
        return delta
    if by_kind[feed.CATALOGUE]:
        delta.catalogue = catalogue()
        delta.every_cached_key = True
    if by_kind[feed.PROMPT]:
        delta.prompts = prompts()
    teams, subscriptions, products = by_kind[feed.TEAM], by_kind[feed.SUBSCRIPTION], by_kind[feed.PRODUCT]
    if teams:
        found = team_limits(teams)
        delta.team_limits = {pk: found.get(pk) for pk in teams}
    if subscriptions or products:
        affected = set(subscriptions) | set(
            Subscription.objects.filter(product_id__in=products).values_list("pk", flat=True)
        )
        found = subscription_limits(affected)
        delta.subscription_limits = {pk: found.get(pk) for pk in affected}
        owners = dict(Subscription.objects.filter(pk__in=affected).values_list("pk", "team_id"))
        if len(owners) < len(affected):
            # A deleted subscription: whose keys it granted to is gone with it.
            delta.needs_rebuild = True
            return delta
        delta.team_ids |= set(owners.values())
        if delta.prompts is None and bundling_products:
            # A new subscription to a product that bundles a prompt: its keys' grants name it soon.
            delta.bundling_subscriptions = bundling_subscriptions(
                product_ids=bundling_products, subscription_ids=affected
            )
    if by_kind[feed.BUDGET]:
        found = budget_rules(by_kind[feed.BUDGET])
        delta.budgets = {pk: found.get(pk) for pk in by_kind[feed.BUDGET]}
    if by_kind[feed.TENANT]:
        delta.team_ids |= set(Team.objects.filter(tenant_id__in=by_kind[feed.TENANT]).values_list("pk", flat=True))
    delta.team_ids |= set(teams)
    delta.key_ids = set(by_kind[feed.KEY])
    delta.keys_have_limits = bool(delta.key_ids) and keys_have_limits(delta.key_ids)
    return delta
