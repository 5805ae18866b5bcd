"""The subscription life cycle: pending → active | rejected; active ⇄ suspended. Every transition is audited
and notified. The gateway sees the result on its next snapshot (the same bound as key revocation)."""

from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from portal import roles
from portal.errors import InvalidInput, InvalidTransition, NotAllowed
from portal.models import Membership, Product, Subscription, Team
from portal.services import audit, limits

Status = Subscription.Status
_TRANSITIONS = {
    "approve": ({Status.PENDING}, Status.ACTIVE, "approved"),
    "reject": ({Status.PENDING}, Status.REJECTED, "rejected"),
    "suspend": ({Status.ACTIVE}, Status.SUSPENDED, "suspended"),
    "resume": ({Status.SUSPENDED}, Status.ACTIVE, "resumed"),
}


@dataclass(frozen=True)
class Quota:
    """What an admin sets on a subscription: RPM/TPM overrides (None follows the product's defaults) and its
    own monthly budget in USD (None: no budget of its own)."""

    rpm_limit: int | None = None
    tpm_limit: int | None = None
    monthly_budget_usd: Decimal | None = None


def _admins_of(tenant):
    return [m.user for m in Membership.objects.filter(tenant=tenant, role=Membership.Role.TENANT_ADMIN)]


def _team_owners(team):
    return [m.user for m in Membership.objects.filter(team=team, role=Membership.Role.TEAM_OWNER)]


@transaction.atomic
def request_subscription(
    *, team: Team, product: Product, purpose: str, requested_by, expected_volume: str = ""
) -> Subscription:
    if not roles.can_manage_team(requested_by, team):
        raise NotAllowed("only the team's owners can request subscriptions")
    if product.tenant_id not in (None, team.tenant_id) or not product.is_published:
        raise InvalidInput("no such product")
    if not purpose.strip():
        raise InvalidInput("say what the subscription is for")
    if Subscription.objects.filter(team=team, product=product, status__in=[Status.PENDING, Status.ACTIVE]).exists():
        raise InvalidInput("this team already has a pending or active subscription to that product")
    subscription = Subscription.objects.create(
        team=team,
        product=product,
        purpose=purpose.strip(),
        expected_volume=expected_volume,
        requested_by=requested_by,
    )
    audit.record(
        tenant=team.tenant,
        actor=requested_by,
        action="subscription.requested",
        target=subscription,
        reason=purpose.strip(),
        details={"product": product.name, "team": team.name},
    )
    if product.requires_approval:
        audit.notify(
            users=_admins_of(team.tenant),
            subject=f"{team.name} requests {product.name}",
            body=f"Purpose: {purpose.strip()}",
            link=f"/console/subscriptions/{subscription.pk}/",
        )
    else:
        _move(subscription, "approve", actor=None, reason="approval not required", actor_label="auto-approval")
    return subscription


def _move(
    subscription: Subscription,
    transition: str,
    *,
    actor,
    reason: str,
    actor_label: str = "",
    quota: Quota | None = None,
) -> Subscription:
    allowed_from, to_status, verb = _TRANSITIONS[transition]
    # Lock the row: two admins deciding at once must not both win.
    subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
    if subscription.status not in allowed_from:
        raise InvalidTransition(f"a {subscription.status} subscription cannot be {verb}")
    subscription.status = to_status
    subscription.decided_by = actor if getattr(actor, "is_authenticated", False) else None
    subscription.decided_at = timezone.now()
    subscription.reason = reason
    subscription.save(update_fields=["status", "decided_by", "decided_at", "reason", "updated_at"])
    audit.record(
        tenant=subscription.team.tenant,
        actor=actor,
        actor_label=actor_label,
        action=f"subscription.{verb}",
        target=subscription,
        reason=reason,
        details={"product": subscription.product.name, "team": subscription.team.name},
    )
    if transition == "approve":
        if quota is None:
            _apply_product_budget(subscription, actor=actor)
        else:
            _apply_quota(subscription, quota, actor=actor)
    recipients = {*_team_owners(subscription.team), subscription.requested_by}
    audit.notify(
        users=recipients,
        subject=f"Subscription to {subscription.product.name} {verb}",
        body=reason or f"Your subscription to {subscription.product.name} was {verb}.",
        link=f"/console/teams/{subscription.team_id}/",
    )
    return subscription


def _apply_product_budget(subscription: Subscription, *, actor) -> None:
    """A product's monthly budget becomes the new subscription's own hard budget (admins may change it later)."""
    from billing import budgets

    if subscription.product.monthly_budget_usd is not None:
        budgets.set_subscription_budget(
            subscription=subscription, limit_usd=subscription.product.monthly_budget_usd, actor=actor
        )


def _apply_quota(subscription: Subscription, quota: Quota, *, actor) -> None:
    from billing import budgets

    changes = {
        name: getattr(quota, name)
        for name in limits.RATE_LIMIT_FIELDS
        if getattr(quota, name) != getattr(subscription, name)
    }
    if changes:
        limits.set_rate_limits(target=subscription, changes=changes, changed_by=actor)
    budgets.set_subscription_budget(subscription=subscription, limit_usd=quota.monthly_budget_usd, actor=actor)


@transaction.atomic
def set_subscription_quota(*, subscription: Subscription, quota: Quota, changed_by) -> Subscription:
    """Change an approved subscription's RPM/TPM and monthly budget (each change audited)."""
    if not roles.can_approve(changed_by, subscription.team.tenant):
        raise NotAllowed("only tenant or platform admins can change a subscription's quota")
    subscription = Subscription.objects.select_for_update().select_related("team__tenant").get(pk=subscription.pk)
    if subscription.status in (Status.PENDING, Status.REJECTED):
        raise InvalidTransition(f"a {subscription.status} subscription has no quota to change; approve it first")
    _apply_quota(subscription, quota, actor=changed_by)
    subscription.refresh_from_db()
    return subscription


@transaction.atomic
def approve_subscription(
    *, subscription: Subscription, decided_by, reason: str = "", quota: Quota | None = None
) -> Subscription:
    """Approve a pending request. With a quota, the subscription gets those limits and that monthly budget;
    without one, the product's defaults (and the product's monthly budget, if it has one)."""
    if not roles.can_approve(decided_by, subscription.team.tenant):
        raise NotAllowed("only tenant or platform admins can decide on subscriptions")
    return _move(subscription, "approve", actor=decided_by, reason=reason, quota=quota)


def _decide(transition: str):
    @transaction.atomic
    def decide(*, subscription: Subscription, decided_by, reason: str = "") -> Subscription:
        if not roles.can_approve(decided_by, subscription.team.tenant):
            raise NotAllowed("only tenant or platform admins can decide on subscriptions")
        return _move(subscription, transition, actor=decided_by, reason=reason)

    decide.__name__ = f"{transition}_subscription"
    return decide


reject_subscription = _decide("reject")
suspend_subscription = _decide("suspend")
resume_subscription = _decide("resume")
