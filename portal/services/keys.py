from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal.errors import InvalidInput, InvalidTransition
from portal.keys import display_prefix, generate_key, hash_key
from portal.models import APIKey, Subscription, Team
from portal.services import audit


@dataclass(frozen=True)
class IssuedKey:
    api_key: APIKey
    secret: str  # shown once, never stored


@transaction.atomic
def issue_api_key(
    *,
    team: Team,
    name: str = "",
    allowed_aliases: list[str] | None = None,
    expires_at: datetime | None = None,
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
    source: str = APIKey.Source.OPERATOR,
    subscriptions: list[Subscription] | None = None,
    created_by=None,
    actor_label: str = "",
) -> IssuedKey:
    for subscription in subscriptions or []:
        if subscription.team_id != team.pk:
            raise InvalidInput("a key can only be scoped to its own team's subscriptions")
    secret = generate_key()
    api_key = APIKey.objects.create(
        team=team,
        name=name,
        source=source,
        prefix=display_prefix(secret),
        secret_hash=hash_key(secret, pepper=settings.TOLLWAY_KEY_PEPPER),
        allowed_aliases=sorted(set(allowed_aliases or [])),
        expires_at=expires_at,
        rpm_limit=rpm_limit,
        tpm_limit=tpm_limit,
        created_by=created_by if getattr(created_by, "is_authenticated", False) else None,
    )
    if subscriptions:
        api_key.subscriptions.set(subscriptions)
    details = {"prefix": api_key.prefix, "source": source, "aliases": api_key.allowed_aliases}
    audit.record(
        tenant=team.tenant,
        actor=created_by,
        actor_label=actor_label,
        action="api_key.created",
        target=api_key,
        details=details,
    )
    return IssuedKey(api_key=api_key, secret=secret)


@transaction.atomic
def revoke_api_key(*, api_key: APIKey, revoked_by=None, reason: str = "", actor_label: str = "") -> APIKey:
    # save() (not update()) so updated_at moves and every process's next snapshot drops the key.
    api_key.is_revoked, api_key.revoked_at = True, timezone.now()
    api_key.save(update_fields=["is_revoked", "revoked_at", "updated_at"])
    audit.record(
        tenant=api_key.team.tenant,
        actor=revoked_by,
        actor_label=actor_label,
        action="api_key.revoked",
        target=api_key,
        reason=reason,
        details={"prefix": api_key.prefix},
    )
    return api_key


@transaction.atomic
def rotate_api_key(*, api_key: APIKey, rotated_by=None, grace_s: int = 24 * 3600) -> IssuedKey:
    """A new key with the same scope; the old one keeps working for `grace_s` seconds, then expires."""
    # Locked: two rotations at once must not both make a successor (rotated_from is unique; the loser would 500).
    old = APIKey.objects.select_for_update().get(pk=api_key.pk)
    if old.is_revoked:
        raise InvalidInput("a revoked key cannot be rotated")
    if APIKey.objects.filter(rotated_from=old).exists():
        raise InvalidTransition("this key has been rotated already: rotate its successor")
    if grace_s < 0 or grace_s > 30 * 24 * 3600:
        raise InvalidInput("the grace period must be between 0 seconds and 30 days")
    issued = issue_api_key(
        team=old.team,
        name=old.name,
        allowed_aliases=old.allowed_aliases,
        expires_at=old.expires_at,
        rpm_limit=old.rpm_limit,
        tpm_limit=old.tpm_limit,
        source=old.source,
        subscriptions=list(old.subscriptions.all()),
        created_by=rotated_by,
    )
    issued.api_key.rotated_from = old
    issued.api_key.save(update_fields=["rotated_from", "updated_at"])
    grace_end = timezone.now() + timedelta(seconds=grace_s)
    old.expires_at = min(old.expires_at, grace_end) if old.expires_at else grace_end
    old.save(update_fields=["expires_at", "updated_at"])
    audit.record(
        tenant=old.team.tenant,
        actor=rotated_by,
        action="api_key.rotated",
        target=old,
        details={"prefix": old.prefix, "new_prefix": issued.api_key.prefix, "grace_s": grace_s},
    )
    return issued
