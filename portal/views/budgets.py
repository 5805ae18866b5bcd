"""Budgets in the console: the list (spent and limit per budget) for everyone who may read them, and create,
edit and deactivate for tenant and platform admins. The same fields and the same services as /api/v1/budgets/.

A budget of another tenant is a 404 whatever the guesser's role; inside their tenants, a missing right is a 403.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from billing import budgets as budget_rules
from billing import selectors as billing_selectors
from billing.dashboards.budgets import budget_label
from billing.models import Budget
from portal import roles, selectors
from portal.forms import BudgetForm
from portal.models import APIKey, Subscription, Team
from portal.views.rendering import paginate, render_page
from routing.models import ModelAlias


def _targets(tenants) -> list[tuple[str, list[tuple[str, str]]]]:
    """What a budget may apply to, grouped for the select: the administered tenants and their teams, keys and
    subscriptions, each named with its tenant."""
    tenants = list(tenants.order_by("name"))
    teams = Team.objects.filter(tenant__in=tenants).select_related("tenant").order_by("tenant__name", "name")
    keys = (
        APIKey.objects.filter(team__tenant__in=tenants, is_revoked=False)
        .select_related("team__tenant")
        .order_by("team__tenant__name", "team__name", "prefix")
    )
    subscriptions = (
        Subscription.objects.filter(team__tenant__in=tenants)
        .exclude(status=Subscription.Status.REJECTED)
        .select_related("team__tenant", "product")
        .order_by("team__tenant__name", "team__name", "product__name")
    )
    return [
        ("Organisation", [(f"tenant:{t.pk}", t.name) for t in tenants]),
        ("Team", [(f"team:{t.pk}", f"{t.tenant.name} / {t.name}") for t in teams]),
        ("Key", [(f"key:{k.pk}", f"{k.team.tenant.name} / {k.team.name} / {k.prefix}… {k.name}") for k in keys]),
        (
            "Subscription",
            [
                (f"subscription:{s.pk}", f"{s.team.tenant.name} / {s.team.name} → {s.product.name}")
                for s in subscriptions
            ],
        ),
    ]


def _form(request, *, data=None, initial=None, budget: Budget | None = None) -> BudgetForm:
    tenants = selectors.administered_tenants(user=request.user)
    if budget is not None:
        tenants = tenants.filter(pk=budget.tenant_id)  # a budget never moves to another tenant
    aliases = list(ModelAlias.objects.order_by("name").values_list("name", flat=True))
    return BudgetForm(data, initial=initial, targets=_targets(tenants), aliases=aliases)


def _save(request, form: BudgetForm, *, budget: Budget | None = None) -> Budget | None:
    """Create or change the budget through billing.budgets; a refusal goes beside the field it names."""
    fields = form.budget_fields()
    tenant = budget_rules.tenant_of_target(scope=fields["scope"], target_id=fields["target_id"])
    if tenant is None or not roles.is_tenant_admin(request.user, tenant):
        form.add_error("target", "Choose one of the listed targets.")
        return None
    try:
        if budget is None:
            return budget_rules.create_budget(tenant=tenant, created_by=request.user, **fields)
        return budget_rules.update_budget(budget=budget, actor=request.user, **fields)
    except budget_rules.BudgetError as error:
        form.add_error(error.field if error.field in form.fields else None, error.message)
        return None


def _budget_to_change(user, budget_id: int) -> Budget:
    budget = get_object_or_404(Budget.objects.filter(tenant__in=roles.tenants_of(user)), pk=budget_id)
    if not roles.is_tenant_admin(user, budget.tenant):
        raise PermissionDenied("Only the organisation's admins can change budgets.")
    return budget


@login_required
def budget_list(request):
    show = request.GET.get("show", "active")
    budgets = billing_selectors.visible_budgets(user=request.user).select_related("tenant")
    budgets = budgets.filter(is_active=show != "inactive").order_by("tenant__name", "scope", "target_id", "pk")
    page = paginate(request, budgets)
    rows = [
        {
            "budget": budget,
            "label": budget_label(budget),
            "spend": billing_selectors.budget_spend(budget),
            "can_change": roles.is_tenant_admin(request.user, budget.tenant),
        }
        for budget in page
    ]
    context = {
        "page": page,
        "rows": rows,
        "show": show if show == "inactive" else "active",
        "can_create": selectors.administered_tenants(user=request.user).exists(),
    }
    return render_page(request, "console/budgets.html", context, section="budgets")


@login_required
def new_budget(request):
    if not selectors.administered_tenants(user=request.user).exists():
        raise PermissionDenied("Only your organisation's admins can set budgets.")
    preset = request.GET.get("target", "")
    form = _form(request, data=request.POST or None, initial={"target": preset, "period": "monthly"})
    if request.method == "POST" and form.is_valid():
        budget = _save(request, form)
        if budget is not None:
            messages.success(request, f"Budget created: {budget_label(budget)}.")
            return redirect("console:budgets")
    return render_page(request, "console/budget_form.html", {"form": form, "budget": None}, section="budgets")


@login_required
def edit_budget(request, budget_id: int):
    budget = _budget_to_change(request.user, budget_id)
    initial = {
        "target": f"{budget.scope}:{budget.target_id}",
        "period": budget.period,
        "limit_usd": budget.limit_usd,
        "limit_tokens": budget.limit_tokens,
        "action": budget.action,
        "downgrade_alias": budget.downgrade_alias,
        "thresholds": ", ".join(str(t) for t in budget.thresholds),
        "webhook_url": budget.webhook_url,
        "is_active": budget.is_active,
    }
    form = _form(request, data=request.POST or None, initial=initial, budget=budget)
    if request.method == "POST" and form.is_valid():
        saved = _save(request, form, budget=budget)
        if saved is not None:
            messages.success(request, f"Budget saved: {budget_label(saved)}.")
            return redirect("console:budgets")
        budget.refresh_from_db()  # a refused change must not show half-applied on the page
    context = {"form": form, "budget": budget, "spend": billing_selectors.budget_spend(budget)}
    return render_page(request, "console/budget_form.html", context, section="budgets")


@login_required
@require_POST
def deactivate_budget(request, budget_id: int):
    budget = _budget_to_change(request.user, budget_id)
    if budget.is_active:
        budget_rules.deactivate_budget(budget=budget, actor=request.user)
        messages.success(request, f"Budget deactivated: {budget_label(budget)}. Calls are no longer held to it.")
    return redirect("console:budgets")
