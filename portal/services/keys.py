from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal.errors import InvalidInput, InvalidTransition
from portal.keys import display_prefix, generate_key, hash_key
from portal.models import APIKey, Subscription, Team
from portal.services import audit, residency
from routing.control_plane import feed


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
    allowed_regions: list[str] | None = None,
    required_tags: list[str] | None = None,
    created_by=None,
    actor_label: str = "",
) -> IssuedKey:
    """A new key. `allowed_regions` must lie within the team's regions, when the team has some; empty means the
    team's. `required_tags` add to the team's (portal/services/residency.py)."""
    for subscription in subscriptions or []:
        if subscription.team_id != team.pk:
            raise InvalidInput("a key can only be scoped to its own team's subscriptions")
    # The feed's counter before reading the team's regions: a change of them being written commits first, so
    # the key is checked against the regions the team has, not the ones it had.
    feed.hold_feed()
    allowed_regions, required_tags = residency.check_key_residency(
        team=team, allowed_regions=allowed_regions, required_tags=required_tags
    )
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
        allowed_regions=allowed_regions,
        required_tags=required_tags,
        created_by=created_by if getattr(created_by, "is_authenticated", False) else None,
    )
    if subscriptions:
        api_key.subscriptions.set(subscriptions)
    details = {"prefix": api_key.prefix, "source": source, "aliases": api_key.allowed_aliases}
    if allowed_regions or required_tags:
        details |= {"allowed_regions": allowed_regions, "required_tags": required_tags}
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
        allowed_regions=_regions_reached(old),
        required_tags=old.required_tags,
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


def _regions_reached(api_key: APIKey) -> list[str]:
    """The regions a key reaches today, as a successor must list them to reach the same: its own within its
    team's. Its team may have been narrowed since the key was made."""
    team_regions, key_regions = api_key.team.allowed_regions, api_key.allowed_regions
    if not (team_regions and key_regions):
        return list(key_regions)
    reached = sorted(set(key_regions) & set(team_regions))
    if not reached:
        # An empty list would mean "the team's regions": the successor would reach more than this key does.
        raise InvalidInput("this key reaches none of its team's regions any more: make a new key instead")
    return reached
