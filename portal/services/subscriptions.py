"""The subscription life cycle: pending → active | rejected; active ⇄ suspended. Every transition is audited
and notified. The gateway sees the result on its next snapshot (the same bound as key revocation)."""

from django.db import transaction
from django.utils import timezone

from portal import roles
from portal.errors import InvalidInput, InvalidTransition, NotAllowed
from portal.models import Membership, Product, Subscription, Team
from portal.services import audit

Status = Subscription.Status
_TRANSITIONS = {
    "approve": ({Status.PENDING}, Status.ACTIVE, "approved"),
    "reject": ({Status.PENDING}, Status.REJECTED, "rejected"),
    "suspend": ({Status.ACTIVE}, Status.SUSPENDED, "suspended"),
    "resume": ({Status.SUSPENDED}, Status.ACTIVE, "resumed"),
}


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


def _move(subscription: Subscription, transition: str, *, actor, reason: str, actor_label: str = "") -> Subscription:
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
        _apply_product_budget(subscription)
    recipients = {*_team_owners(subscription.team), subscription.requested_by}
    audit.notify(
        users=recipients,
        subject=f"Subscription to {subscription.product.name} {verb}",
        body=reason or f"Your subscription to {subscription.product.name} was {verb}.",
        link=f"/console/teams/{subscription.team_id}/",
    )
    return subscription


def _apply_product_budget(subscription: Subscription) -> None:
    """A product's monthly budget becomes the new subscription's own hard budget (admins may change it later)."""
    from billing.models import Budget

    product = subscription.product
    if product.monthly_budget_usd is None:
        return
    Budget.objects.get_or_create(
        scope=Budget.Scope.SUBSCRIPTION,
        target_id=subscription.pk,
        period=Budget.Period.MONTHLY,
        defaults={
            "tenant": subscription.team.tenant,
            "limit_usd": product.monthly_budget_usd,
            "thresholds": [80, 100],
            "action": Budget.Action.BLOCK,
        },
    )


def _decide(transition: str):
    @transaction.atomic
    def decide(*, subscription: Subscription, decided_by, reason: str = "") -> Subscription:
        if not roles.can_approve(decided_by, subscription.team.tenant):
            raise NotAllowed("only tenant or platform admins can decide on subscriptions")
        return _move(subscription, transition, actor=decided_by, reason=reason)

    decide.__name__ = f"{transition}_subscription"
    return decide


approve_subscription = _decide("approve")
reject_subscription = _decide("reject")
suspend_subscription = _decide("suspend")
resume_subscription = _decide("resume")
