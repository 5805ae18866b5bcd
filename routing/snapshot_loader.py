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
from portal.models import APIKey
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


def build_snapshot() -> Snapshot:
    keys = {}
    for key in APIKey.objects.select_related("team__tenant").filter(is_revoked=False):
        keys[key.prefix] = Principal(
            key_id=key.pk,
            key_prefix=key.prefix,
            secret_hash=key.secret_hash,
            tenant_id=key.team.tenant_id,
            tenant_name=key.team.tenant.name,
            team_id=key.team_id,
            team_name=key.team.name,
            allowed_aliases=frozenset(key.allowed_aliases) if key.allowed_aliases else None,
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
