"""RPM/TPM overrides of a team or a subscription, set by the tenant's admins. Empty clears an override: a team
then has no limit of its own, a subscription falls back to its product's defaults. Keys carry their own limits
(portal/services/keys.py). The gateway enforces what its next snapshot reads, like every portal change."""

from django.db import transaction

from portal import roles
from portal.errors import InvalidInput, NotAllowed
from portal.models import Subscription, Team
from portal.services import audit

RATE_LIMIT_FIELDS = ("rpm_limit", "tpm_limit")


@transaction.atomic
def set_rate_limits(*, target: Team | Subscription, changes: dict, changed_by) -> Team | Subscription:
    tenant = target.tenant if isinstance(target, Team) else target.team.tenant
    if not roles.is_tenant_admin(changed_by, tenant):
        raise NotAllowed("only the tenant's admins can change rate limits")
    unknown = sorted(set(changes) - set(RATE_LIMIT_FIELDS))
    if unknown:
        raise InvalidInput(f"only rpm_limit and tpm_limit can be changed here, not {', '.join(unknown)}")
    target = type(target).objects.select_for_update().get(pk=target.pk)
    before = {name: getattr(target, name) for name in changes}
    for name, value in changes.items():
        setattr(target, name, value)
    target.save(update_fields=list(changes))
    audit.record(
        tenant=tenant,
        actor=changed_by,
        action=f"{type(target).__name__.lower()}.limits_changed",
        target=target,
        details={"before": before, "after": dict(changes)},
    )
    return target
