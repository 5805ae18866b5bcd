from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Case, IntegerField, Value, When
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from billing import budgets as budget_rules
from billing import selectors as billing_selectors
from billing.dashboards.budgets import budget_label
from portal import roles, selectors, services
from portal.errors import PortalError
from portal.forms import DecisionForm, QuotaForm, SubscribeForm
from portal.models import AuditLogEntry, Subscription
from portal.services import subscriptions as subscription_services
from portal.views import access
from portal.views.rendering import as_sentence, paginate, render_page

Status = Subscription.Status
FILTERS = {"pending": [Status.PENDING], "active": [Status.ACTIVE], "suspended": [Status.SUSPENDED]}
FILTERS["rejected"] = [Status.REJECTED]


@login_required
def subscribe(request, product_id: int):
    products = selectors.visible_products(user=request.user).filter(is_published=True)
    product = get_object_or_404(products, pk=product_id)
    teams = access.manageable_teams(request.user)
    if product.tenant_id is not None:
        teams = teams.filter(tenant_id=product.tenant_id)
    if not teams.exists():
        raise PermissionDenied("Only team owners and organisation admins can request access to a product.")
    form = SubscribeForm(request.POST or None, teams=teams, product=product)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            subscription = services.request_subscription(
                team=data["team"],
                product=product,
                purpose=data["purpose"],
                expected_volume=data["expected_volume"],
                requested_by=request.user,
            )
        except PortalError as exc:
            form.add_error(None, as_sentence(exc))
        else:
            if subscription.status == Status.ACTIVE:
                messages.success(request, f"{data['team'].name} can use {product.name} now.")
            else:
                messages.success(request, f"Requested {product.name}. The team's owners hear as soon as it's decided.")
            return redirect(reverse("console:team", args=[subscription.team_id]) + "#subscriptions")
    context = {"product": product, "form": form}
    return render_page(request, "console/subscribe.html", context, section="catalogue")


@login_required
def approvals(request):
    tenants = selectors.administered_tenants(user=request.user)
    if not tenants.exists():
        raise PermissionDenied("The approvals queue is for your organisation's admins.")
    status_filter = request.GET.get("status", "")
    subscriptions = Subscription.objects.filter(team__tenant__in=tenants).select_related(
        "team__tenant", "product", "requested_by", "decided_by"
    )
    if status_filter in FILTERS:
        subscriptions = subscriptions.filter(status__in=FILTERS[status_filter])
    else:
        status_filter = ""
    # Pending first (oldest waiting longest at the top), then everything else, latest first.
    subscriptions = subscriptions.annotate(
        waiting=Case(When(status=Status.PENDING, then=Value(0)), default=1, output_field=IntegerField())
    ).order_by("waiting", Case(When(status=Status.PENDING, then="created_at")), "-updated_at", "-id")
    context = {
        "subscriptions": paginate(request, subscriptions),
        "status_filter": status_filter,
        "filters": [("", "All"), *((key, key.capitalize()) for key in FILTERS)],
        "pending_count": Subscription.objects.filter(team__tenant__in=tenants, status=Status.PENDING).count(),
    }
    return render_page(request, "console/approvals.html", context, section="approvals")


def _quota_initial(subscription) -> dict:
    """What the quota form starts from: the subscription's own values once approved, else the product's budget."""
    if subscription.status == Status.PENDING:
        return {"monthly_budget_usd": subscription.product.monthly_budget_usd}
    budget = budget_rules.subscription_budget(subscription)
    return {
        "rpm_limit": subscription.rpm_limit,
        "tpm_limit": subscription.tpm_limit,
        "monthly_budget_usd": budget.limit_usd if budget else None,
    }


def _spend_context(subscription) -> dict:
    """What an approver weighs: the team's spend this month and the budgets its calls already count against."""
    team = subscription.team
    start, end = billing_selectors.month_bounds()
    team_usd, team_tokens = billing_selectors.target_spend(scope="team", target_id=team.pk, start=start, end=end)
    covering = [
        (budget, budget_label(budget), billing_selectors.budget_spend(budget))
        for budget in billing_selectors.budgets_covering_team(team=team)
    ]
    return {
        "month_start": start,
        "team_spend_usd": team_usd,
        "team_spend_tokens": team_tokens,
        "team_budgets": covering,
    }


def _subscription_page(request, subscription, *, form=None, failed_action: str = "", quota_form=None):
    can_decide = roles.can_approve(request.user, subscription.team.tenant)
    context = {
        "subscription": subscription,
        "can_decide": can_decide,
        "history": AuditLogEntry.objects.filter(target_type="subscription", target_id=str(subscription.pk))
        .select_related("actor")
        .order_by("created_at", "id"),
        "form": form,
        "failed_action": failed_action,
        "own_budget": budget_rules.subscription_budget(subscription),
    }
    if can_decide:
        context |= _spend_context(subscription)
        has_quota = subscription.status in (Status.PENDING, Status.ACTIVE, Status.SUSPENDED)
        if has_quota:
            context["quota_form"] = quota_form or QuotaForm(
                initial=_quota_initial(subscription), product=subscription.product
            )
    return render_page(request, "console/subscription_detail.html", context, section="approvals")


def _quota_of(form: QuotaForm) -> subscription_services.Quota:
    return subscription_services.Quota(**{name: form.cleaned_data.get(name) for name in form.fields})


@login_required
def subscription_detail(request, subscription_id: int):
    subscription = access.subscription_in_tenants(request.user, subscription_id)
    if not (
        roles.can_approve(request.user, subscription.team.tenant)
        or roles.can_view_team(request.user, subscription.team)
    ):
        raise PermissionDenied("This subscription belongs to a team you are not in.")
    return _subscription_page(request, subscription)


def _next_url(request, default: str) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return default


def _decision_view(action: str, *, done: str, reason_required: bool = False):
    """One POST view per transition; each calls its service (which checks the role again and audits)."""
    service = getattr(services, f"{action}_subscription")

    @login_required
    @require_POST
    def decide(request, subscription_id: int):
        subscription = access.subscription_to_decide(request.user, subscription_id)
        form = DecisionForm(request.POST, reason_required=reason_required)
        if not form.is_valid():
            return _subscription_page(request, subscription, form=form, failed_action=action)
        try:
            service(subscription=subscription, decided_by=request.user, reason=form.cleaned_data["reason"])
        except PortalError as exc:
            messages.error(request, as_sentence(exc))
        else:
            messages.success(request, f"{subscription.team.name} → {subscription.product.name}: {done}.")
        return redirect(_next_url(request, reverse("console:approvals")))

    decide.__name__ = f"{action}_subscription"
    return decide


@login_required
@require_POST
def approve(request, subscription_id: int):
    """Approve, with the quota the approver set on the decision page, or the product's defaults from the
    one-click button of the approvals list (which sends no quota)."""
    subscription = access.subscription_to_decide(request.user, subscription_id)
    form = DecisionForm(request.POST)
    quota_form = QuotaForm(request.POST, product=subscription.product) if "set_quota" in request.POST else None
    if not form.is_valid() or (quota_form is not None and not quota_form.is_valid()):
        return _subscription_page(request, subscription, form=form, failed_action="approve", quota_form=quota_form)
    try:
        services.approve_subscription(
            subscription=subscription,
            decided_by=request.user,
            reason=form.cleaned_data["reason"],
            quota=_quota_of(quota_form) if quota_form is not None else None,
        )
    except PortalError as exc:
        messages.error(request, as_sentence(exc))
    else:
        messages.success(request, f"{subscription.team.name} → {subscription.product.name}: approved.")
    return redirect(_next_url(request, reverse("console:approvals")))


@login_required
@require_POST
def change_quota(request, subscription_id: int):
    subscription = access.subscription_to_decide(request.user, subscription_id)
    quota_form = QuotaForm(request.POST, product=subscription.product)
    if not quota_form.is_valid():
        return _subscription_page(request, subscription, quota_form=quota_form)
    try:
        subscription_services.set_subscription_quota(
            subscription=subscription, quota=_quota_of(quota_form), changed_by=request.user
        )
    except PortalError as exc:
        messages.error(request, as_sentence(exc))
    else:
        messages.success(request, f"Quota of {subscription.team.name} → {subscription.product.name} saved.")
    return redirect(reverse("console:subscription", args=[subscription.pk]))


reject = _decision_view("reject", done="rejected", reason_required=True)
suspend = _decision_view("suspend", done="suspended")
resume = _decision_view("resume", done="resumed")
