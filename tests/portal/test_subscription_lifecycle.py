import pytest
from django.contrib.auth import get_user_model
from django.core import mail

from portal import services
from portal.errors import InvalidInput, InvalidTransition, NotAllowed
from portal.models import AuditLogEntry, Membership, Notification, Product, Subscription
from tests.factories import TeamFactory

pytestmark = pytest.mark.django_db
Status = Subscription.Status


def user(email: str):
    return get_user_model().objects.create_user(username=email, email=email, password="pw-1234567")


@pytest.fixture
def world():
    team = TeamFactory()
    owner, admin, member = user("owner@acme.test"), user("admin@acme.test"), user("member@acme.test")
    Membership.objects.create(user=owner, tenant=team.tenant, team=team, role=Membership.Role.TEAM_OWNER)
    Membership.objects.create(user=admin, tenant=team.tenant, team=None, role=Membership.Role.TENANT_ADMIN)
    Membership.objects.create(user=member, tenant=team.tenant, team=team, role=Membership.Role.MEMBER)
    product = Product.objects.create(name="GPT", requires_approval=True)
    return team, owner, admin, member, product


def test_a_request_is_pending_audited_and_the_admins_are_told(world):
    team, owner, admin, _, product = world

    subscription = services.request_subscription(team=team, product=product, purpose="checkout bot", requested_by=owner)

    assert subscription.status == Status.PENDING
    assert AuditLogEntry.objects.filter(action="subscription.requested", target_id=str(subscription.pk)).exists()
    assert Notification.objects.filter(user=admin).count() == 1
    assert mail.outbox and mail.outbox[0].to == ["admin@acme.test"]
    assert f"http://127.0.0.1:8000/console/subscriptions/{subscription.pk}/" in mail.outbox[0].body


def test_approving_records_the_approver_and_tells_the_owner(world):
    team, owner, admin, _, product = world
    subscription = services.request_subscription(team=team, product=product, purpose="bot", requested_by=owner)

    services.approve_subscription(subscription=subscription, decided_by=admin, reason="fine")

    subscription.refresh_from_db()
    assert (subscription.status, subscription.decided_by, subscription.reason) == (Status.ACTIVE, admin, "fine")
    assert AuditLogEntry.objects.filter(action="subscription.approved", actor=admin).exists()
    assert Notification.objects.filter(user=owner, subject__contains="approved").exists()


@pytest.mark.parametrize(
    ("steps", "final"),
    [
        (["reject"], Status.REJECTED),
        (["approve", "suspend"], Status.SUSPENDED),
        (["approve", "suspend", "resume"], Status.ACTIVE),
    ],
)
def test_the_allowed_transitions_land_where_they_should(world, steps, final):
    team, owner, admin, _, product = world
    subscription = services.request_subscription(team=team, product=product, purpose="bot", requested_by=owner)
    for step in steps:
        subscription = getattr(services, f"{step}_subscription")(subscription=subscription, decided_by=admin)
    assert subscription.status == final
    assert AuditLogEntry.objects.filter(target_type="subscription").count() == 1 + len(steps)


@pytest.mark.parametrize(
    ("steps", "illegal"),
    [([], "suspend"), ([], "resume"), (["reject"], "approve"), (["approve"], "approve"), (["approve"], "resume")],
)
def test_an_illegal_transition_is_refused_and_changes_nothing(world, steps, illegal):
    team, owner, admin, _, product = world
    subscription = services.request_subscription(team=team, product=product, purpose="bot", requested_by=owner)
    for step in steps:
        subscription = getattr(services, f"{step}_subscription")(subscription=subscription, decided_by=admin)
    before = subscription.status

    with pytest.raises(InvalidTransition):
        getattr(services, f"{illegal}_subscription")(subscription=subscription, decided_by=admin)

    subscription.refresh_from_db()
    assert subscription.status == before


def test_only_admins_decide_and_only_owners_request(world):
    team, owner, _, member, product = world
    with pytest.raises(NotAllowed):
        services.request_subscription(team=team, product=product, purpose="bot", requested_by=member)
    subscription = services.request_subscription(team=team, product=product, purpose="bot", requested_by=owner)
    for someone in (owner, member):
        with pytest.raises(NotAllowed):
            services.approve_subscription(subscription=subscription, decided_by=someone)


def test_an_admin_of_another_tenant_cannot_decide(world):
    team, owner, _, _, product = world
    stranger = user("admin@other.test")
    Membership.objects.create(user=stranger, tenant=TeamFactory().tenant, role=Membership.Role.TENANT_ADMIN)
    subscription = services.request_subscription(team=team, product=product, purpose="bot", requested_by=owner)
    with pytest.raises(NotAllowed):
        services.approve_subscription(subscription=subscription, decided_by=stranger)


def test_a_product_without_approval_is_active_at_once(world):
    team, owner, _, _, product = world
    product.requires_approval = False
    product.save()
    subscription = services.request_subscription(team=team, product=product, purpose="bot", requested_by=owner)
    assert Subscription.objects.get(pk=subscription.pk).status == Status.ACTIVE


def test_a_second_live_subscription_to_the_same_product_is_refused(world):
    team, owner, _, _, product = world
    services.request_subscription(team=team, product=product, purpose="bot", requested_by=owner)
    with pytest.raises(InvalidInput):
        services.request_subscription(team=team, product=product, purpose="again", requested_by=owner)


def test_another_tenants_product_cannot_be_requested(world):
    team, owner, _, _, _ = world
    private = Product.objects.create(name="Private", tenant=TeamFactory().tenant)
    with pytest.raises(InvalidInput):
        services.request_subscription(team=team, product=private, purpose="bot", requested_by=owner)


def test_approving_a_product_with_a_monthly_budget_gives_the_subscription_that_budget(world):
    from decimal import Decimal

    from billing.models import Budget

    team, owner, admin, _, product = world
    product.monthly_budget_usd = Decimal("250")
    product.save()
    subscription = services.request_subscription(team=team, product=product, purpose="bot", requested_by=owner)

    services.approve_subscription(subscription=subscription, decided_by=admin)
    services.suspend_subscription(subscription=subscription, decided_by=admin)
    services.resume_subscription(subscription=subscription, decided_by=admin)

    budget = Budget.objects.get()
    assert (budget.scope, budget.target_id, budget.period, budget.limit_usd, budget.action, budget.tenant) == (
        "subscription",
        subscription.pk,
        "monthly",
        Decimal("250"),
        "block",
        team.tenant,
    )


def test_a_subscription_gets_its_products_default_rate_limits_unless_it_has_its_own(world, transactional_db):
    from routing.control_plane import loader

    team, owner, admin, _, product = world
    product.default_rpm, product.default_tpm = 60, 10_000
    product.save()
    first = services.request_subscription(team=team, product=product, purpose="bot", requested_by=owner)
    services.approve_subscription(subscription=first, decided_by=admin)
    other = Product.objects.create(name="Claude", requires_approval=False, default_rpm=30)
    second = services.request_subscription(team=team, product=other, purpose="bot", requested_by=owner)
    Subscription.objects.filter(pk=second.pk).update(rpm_limit=5)

    limits = loader.subscription_limits()

    assert (limits[first.pk].rpm, limits[first.pk].tpm) == (60, 10_000)
    assert (limits[second.pk].rpm, limits[second.pk].tpm) == (5, None)
