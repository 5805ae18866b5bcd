"""Builds the in-memory Snapshot (routing/engine/snapshot.py) from the database, and keeps it fresh.

Every gateway process reloads it every TOLLWAY_SNAPSHOT_REFRESH_S seconds on the database thread, so a
revoked key, a new alias or a changed price reaches every process within that bound plus one load.
"""

import asyncio
import logging
import os
import time

from django.conf import settings

from config.db_thread import run_in_db
from portal.models import APIKey, Subscription
from routing.credentials import CredentialError, decrypt_secret
from routing.engine import snapshot
from routing.engine.snapshot import Principal, Snapshot
from routing.engine.types import ModelPrice, Target
from routing.models import AliasDeployment, Provider

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


def _subscribed_aliases() -> tuple[dict[int, set[str]], dict[int, set[str]]]:
    """Aliases reachable through active subscriptions: per team, and per subscription."""
    by_team: dict[int, set[str]] = {}
    by_subscription: dict[int, set[str]] = {}
    active = Subscription.objects.filter(status=Subscription.Status.ACTIVE)
    for subscription_id, team_id, alias in active.values_list("pk", "team_id", "product__aliases__name"):
        by_subscription.setdefault(subscription_id, set())
        by_team.setdefault(team_id, set())
        if alias:
            by_subscription[subscription_id].add(alias)
            by_team[team_id].add(alias)
    return by_team, by_subscription


def _portal_scope(key: APIKey, by_team, by_subscription) -> frozenset[str]:
    scoped = [s.pk for s in key.subscriptions.all()]
    if not scoped:
        return frozenset(by_team.get(key.team_id, ()))
    return frozenset(alias for pk in scoped for alias in by_subscription.get(pk, ()))


def build_snapshot() -> Snapshot:
    keys = {}
    by_team, by_subscription = _subscribed_aliases()
    live_keys = APIKey.objects.select_related("team__tenant").prefetch_related("subscriptions")
    for key in live_keys.filter(is_revoked=False):
        if key.source == APIKey.Source.PORTAL:
            # Portal keys reach only what their team's active subscriptions grant, right now.
            allowed = _portal_scope(key, by_team, by_subscription)
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
            price=ModelPrice(
                input_per_million=deployment.input_per_1m,
                output_per_million=deployment.output_per_1m,
                cached_input_per_million=deployment.cached_input_per_1m,
            ),
            api_key=provider_keys[provider.pk],
            api_version=provider.api_version,
            connect_timeout_s=provider.connect_timeout_s,
            timeout_s=provider.timeout_s,
            max_output_tokens=deployment.max_output_tokens,
        )
        aliases.setdefault(route.alias.name, []).append(target)
    return Snapshot(
        keys_by_prefix=keys,
        aliases={name: tuple(targets) for name, targets in aliases.items()},
        loaded_at=time.time(),
    )


async def refresh_once() -> None:
    snapshot.install(await run_in_db(build_snapshot))


async def refresh_forever() -> None:
    interval = settings.TOLLWAY_SNAPSHOT_REFRESH_S
    while True:
        await asyncio.sleep(interval)
        try:
            await refresh_once()
        except Exception:
            # Keep serving the last good snapshot; a database blip must not take the gateway down.
            log.exception("snapshot refresh failed; serving the previous one")
