from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from portal.keys import display_prefix, generate_key, hash_key
from portal.models import APIKey, Team, Tenant


@dataclass(frozen=True)
class IssuedKey:
    api_key: APIKey
    secret: str  # shown once, never stored


def ensure_team(*, team_name: str, tenant_name: str = "default") -> Team:
    tenant, _ = Tenant.objects.get_or_create(slug=slugify(tenant_name)[:100], defaults={"name": tenant_name})
    team, _ = Team.objects.get_or_create(tenant=tenant, slug=slugify(team_name)[:100], defaults={"name": team_name})
    return team


@transaction.atomic
def issue_api_key(
    *,
    team: Team,
    name: str = "",
    allowed_aliases: list[str] | None = None,
    expires_at: datetime | None = None,
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
) -> IssuedKey:
    secret = generate_key()
    api_key = APIKey.objects.create(
        team=team,
        name=name,
        prefix=display_prefix(secret),
        secret_hash=hash_key(secret, pepper=settings.TOLLWAY_KEY_PEPPER),
        allowed_aliases=sorted(set(allowed_aliases or [])),
        expires_at=expires_at,
        rpm_limit=rpm_limit,
        tpm_limit=tpm_limit,
    )
    return IssuedKey(api_key=api_key, secret=secret)


def revoke_api_key(*, api_key: APIKey) -> APIKey:
    # save() (not update()) so updated_at moves and every process's next snapshot drops the key.
    api_key.is_revoked, api_key.revoked_at = True, timezone.now()
    api_key.save(update_fields=["is_revoked", "revoked_at", "updated_at"])
    return api_key
