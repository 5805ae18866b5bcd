"""Builds the in-memory Snapshot (routing/engine/snapshot.py) from the database, and keeps it fresh.

Every gateway process reloads it every TOLLWAY_SNAPSHOT_REFRESH_S seconds on the database thread, so a
revoked key, a new alias or a changed price reaches every process within that bound plus one load.
"""

import asyncio
import logging
import os
import time

from django.conf import settings
from django.db.models import Q

from billing.models import Budget
from config.db_thread import run_in_db
from portal.models import APIKey, Subscription, Team
from routing.credentials import CredentialError, decrypt_secret
from routing.engine import snapshot
from routing.engine.snapshot import BudgetRule, Principal, RateRule, Snapshot
from routing.engine.types import ModelPrice, Target
from routing.models import AliasDeployment, Deployment, ModelAlias, Provider

log = logging.getLogger(__name__)


def _provider_key(provider: Provider) -> str:
    if provider.api_key_env:
        # Operators may keep provider keys in the environment instead of the database.
        return os.environ.get(provider.api_key_env, "")
    try:
        return decrypt_secret(provider.api_key_encrypted)
    except CredentialError:
        log.error("provider %s: credential cannot be decrypted; check TOLLWAY_FERNET_KEYS", provider.name)
        return ""


def _subscribed_aliases() -> tuple[dict[int, list[int]], dict[int, set[str]]]:
    """Active subscriptions: each team's (oldest first), and the aliases each grants."""
    team_subscriptions: dict[int, list[int]] = {}
    by_subscription: dict[int, set[str]] = {}
    active = Subscription.objects.filter(status=Subscription.Status.ACTIVE).order_by("pk")
    for subscription_id, team_id, alias in active.values_list("pk", "team_id", "product__aliases__name"):
        if subscription_id not in by_subscription:
            by_subscription[subscription_id] = set()
            team_subscriptions.setdefault(team_id, []).append(subscription_id)
        if alias:
            by_subscription[subscription_id].add(alias)
    return team_subscriptions, by_subscription


def _portal_scope(key: APIKey, team_subscriptions, by_subscription) -> dict[str, int]:
    """alias -> the subscription that grants it to this key (the oldest, when several do)."""
    scoped = sorted(s.pk for s in key.subscriptions.all()) or team_subscriptions.get(key.team_id, [])
    granted: dict[str, int] = {}
    for pk in scoped:
        for alias in by_subscription.get(pk, ()):
            granted.setdefault(alias, pk)
    return granted


def build_snapshot() -> Snapshot:
    keys = {}
    team_subscriptions, by_subscription = _subscribed_aliases()
    live_keys = APIKey.objects.select_related("team__tenant").prefetch_related("subscriptions")
    for key in live_keys.filter(is_revoked=False):
        subscription_by_alias: dict[str, int] = {}
        if key.source == APIKey.Source.PORTAL:
            # Portal keys reach only what their team's active subscriptions grant, right now.
            subscription_by_alias = _portal_scope(key, team_subscriptions, by_subscription)
            allowed = frozenset(subscription_by_alias)
        else:
            allowed = frozenset(key.allowed_aliases) if key.allowed_aliases else None
        keys[key.prefix] = Principal(
            key_id=key.pk,
            key_prefix=key.prefix,
            secret_hash=key.secret_hash,
            tenant_id=key.team.tenant_id,
            tenant_name=key.team.tenant.name,
            team_id=key.team_id,
            team_name=key.team.name,
            allowed_aliases=allowed,
            expires_at=key.expires_at.timestamp() if key.expires_at else None,
            is_revoked=key.is_revoked,
            rpm_limit=key.rpm_limit,
            tpm_limit=key.tpm_limit,
            subscription_by_alias=subscription_by_alias,
        )
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
        )
        aliases.setdefault(route.alias.name, []).append(target)
    budget_rules = _budget_rules()
    return Snapshot(
        keys_by_prefix=keys,
        aliases={name: tuple(targets) for name, targets in aliases.items()},
        baselines=_baseline_prices(aliases),
        budgets=budget_rules,
        budget_by_id={rule.budget_id: rule for rules in budget_rules.values() for rule in rules},
        team_limits={
            team_id: RateRule(rpm=rpm, tpm=tpm)
            for team_id, rpm, tpm in Team.objects.filter(
                Q(rpm_limit__isnull=False) | Q(tpm_limit__isnull=False)
            ).values_list("pk", "rpm_limit", "tpm_limit")
        },
        subscription_limits=_subscription_limits(set(by_subscription)),
        loaded_at=time.time(),
    )


def _budget_rules() -> dict[tuple[str, int], tuple[BudgetRule, ...]]:
    rules: dict[tuple[str, int], list[BudgetRule]] = {}
    for budget in Budget.objects.filter(is_active=True).order_by("pk"):
        rules.setdefault((budget.scope, budget.target_id), []).append(
            BudgetRule(
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
        )
    return {scope: tuple(found) for scope, found in rules.items()}


def _subscription_limits(active_ids: set[int]) -> dict[int, RateRule]:
    """A subscription's own RPM/TPM where set, else its product's defaults."""
    limits = {}
    rows = Subscription.objects.filter(pk__in=active_ids).values_list(
        "pk", "rpm_limit", "tpm_limit", "product__default_rpm", "product__default_tpm"
    )
    for pk, rpm, tpm, default_rpm, default_tpm in rows:
        rule = RateRule(rpm=rpm if rpm is not None else default_rpm, tpm=tpm if tpm is not None else default_tpm)
        if rule.rpm is not None or rule.tpm is not None:
            limits[pk] = rule
    return limits


def _price_of(deployment: Deployment) -> ModelPrice:
    return ModelPrice(
        input_per_million=deployment.input_per_1m,
        output_per_million=deployment.output_per_1m,
        cached_input_per_million=deployment.cached_input_per_1m,
    )


def _baseline_prices(aliases: dict[str, list[Target]]) -> dict[str, ModelPrice]:
    """Each alias's chosen baseline deployment, else its most expensive enabled one (by output, then input)."""
    chosen = ModelAlias.objects.filter(baseline_deployment__isnull=False).select_related("baseline_deployment")
    prices = {alias.name: _price_of(alias.baseline_deployment) for alias in chosen}
    for alias, targets in aliases.items():
        if alias not in prices:
            prices[alias] = max((t.price for t in targets), key=lambda p: (p.output_per_million, p.input_per_million))
    return prices


async def refresh_once() -> None:
    snapshot.install(await run_in_db(build_snapshot))


async def refresh_forever() -> None:
    interval = settings.TOLLWAY_SNAPSHOT_REFRESH_S
    failing_since: float | None = None
    while True:
        await asyncio.sleep(interval)
        try:
            await refresh_once()
        except Exception as exc:
            # Keep serving the last good snapshot; a database blip must not take the gateway down. Say so once
            # per outage, not every interval: a 60 s outage at 2 s is 30 tracebacks that tell nothing new.
            if failing_since is None:
                failing_since = time.monotonic()
                log.warning("snapshot refresh failed (%s); serving the previous one until it works again", exc)
            else:
                log.debug("snapshot refresh still failing: %s", exc)
            continue
        if failing_since is not None:
            log.info("snapshot refresh works again after %.1f s", time.monotonic() - failing_since)
            failing_since = None
