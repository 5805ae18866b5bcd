"""The catalogue in the console: products, models (aliases and how they route), deployments with their prices
and routing facts, providers. Platform admins change an alias's routing and a deployment's routing facts here,
through routing/services.py, so the console refuses exactly what the catalogue importer refuses, and says where.
"""

from collections import defaultdict

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Prefetch, Q
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse

from portal import roles, selectors
from portal.errors import PortalError
from portal.forms import NewProductForm
from portal.models import Subscription
from portal.routing_forms import AliasRoutingForm, DeploymentRoutingForm
from portal.services.products import create_product
from portal.views import access
from portal.views.rendering import as_sentence, paginate, render_page, usd
from routing import selectors as routing_selectors
from routing import services
from routing.catalogue import CatalogueError, dump_catalogue_yaml
from routing.catalogue.policies import routing_mapping
from routing.models import AliasDeployment, Deployment, ModelAlias, Provider
from routing.observability.metrics import stored_breaker_states

HELD = [Subscription.Status.PENDING, Subscription.Status.ACTIVE, Subscription.Status.SUSPENDED]


@login_required
def catalogue(request):
    user = request.user
    products = list(selectors.visible_products(user=user))
    # Which of the user's teams already hold each product, so the page can say so instead of offering it twice.
    held = defaultdict(list)
    for subscription in Subscription.objects.filter(
        team__in=roles.teams_of(user), product__in=products, status__in=HELD
    ).select_related("team"):
        held[subscription.product_id].append(subscription)
    manageable_tenant_ids = set(access.manageable_teams(user).values_list("tenant_id", flat=True))
    for product in products:
        product.held = held[product.pk]
        limits = [(product.default_rpm, "requests/min"), (product.default_tpm, "tokens/min")]
        product.limits = " · ".join(f"{value:,} {unit}" for value, unit in limits if value)
        product.can_request = product.is_published and (
            bool(manageable_tenant_ids) if product.tenant_id is None else product.tenant_id in manageable_tenant_ids
        )

    live = Q(is_enabled=True, provider__is_enabled=True)
    deployments = paginate(
        request, Deployment.objects.filter(live).select_related("provider").order_by("name"), param="deployments"
    )
    # As this process's engine sees them (with Redis, what every gateway process sees).
    breakers = stored_breaker_states()
    for deployment in deployments:
        deployment.input_price = usd(deployment.input_per_1m)
        deployment.output_price = usd(deployment.output_per_1m)
        deployment.cached_price = usd(deployment.cached_input_per_1m) if deployment.cached_input_per_1m else ""
        deployment.context = f"{deployment.context_window:,}" if deployment.context_window else ""
        deployment.quota = _quota(deployment)
        deployment.breaker = breakers.get(deployment.name, "closed")
    routes = AliasDeployment.objects.select_related("deployment").order_by("priority", "id")
    aliases = paginate(
        request,
        ModelAlias.objects.prefetch_related(Prefetch("routes", queryset=routes)).order_by("name"),
        param="aliases",
    )
    # The experiment comparison opens for an alias of a product the user sees (billing/dashboards/experiments.py).
    comparable = {alias.pk for product in products for alias in product.aliases.all()}
    for alias in aliases:
        routing = routing_mapping(alias.routing, deployments=tuple(r.deployment.name for r in alias.routes.all()))
        alias.experiment = routing.get("experiment")
        alias.is_comparable = alias.experiment is not None and (roles.is_platform_admin(user) or alias.pk in comparable)
        alias.strategy = routing.get("strategy", "priority")
        alias.min_quality = routing.get("min_quality")
        alias.fallbacks = routing.get("fallbacks", [])
    # Names and kinds only: base URLs and credentials are the platform's business.
    providers = (
        Provider.objects.filter(is_enabled=True)
        .annotate(deployment_count=Count("deployments", filter=Q(deployments__is_enabled=True)))
        .order_by("name")
    )
    context = {
        "products": products,
        "deployments": deployments,
        "aliases": aliases,
        "providers": providers,
        "is_platform_admin": roles.is_platform_admin(user),
        "can_publish": selectors.administered_tenants(user=user).exists() or roles.is_platform_admin(user),
    }
    return render_page(request, "console/catalogue.html", context, section="catalogue")


@login_required
def new_product(request):
    user = request.user
    tenants = selectors.administered_tenants(user=user)
    may_publish_to_all = roles.is_platform_admin(user)
    if not may_publish_to_all and not tenants.exists():
        raise PermissionDenied("only tenant and platform admins publish products")
    form = NewProductForm(request.POST or None, tenants=tenants, may_publish_to_all=may_publish_to_all)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            product = create_product(
                name=data["name"],
                created_by=user,
                tenant=data["tenant"],
                description=data["description"],
                aliases=list(data["aliases"]),
                requires_approval=data["requires_approval"],
                default_rpm=data["default_rpm"],
                default_tpm=data["default_tpm"],
                monthly_budget_usd=data["monthly_budget_usd"],
            )
        except PortalError as exc:
            form.add_error(None, as_sentence(exc))
        else:
            messages.success(request, f"Published {product.name}. Teams can request it in the catalogue now.")
            return redirect("console:catalogue")
    return render_page(request, "console/product_new.html", {"form": form}, section="catalogue")


# --- routing, edited by platform admins ---------------------------------------------------------------------


def _quota(deployment: Deployment) -> str:
    limits = [(deployment.rpm_limit, "req/min"), (deployment.tpm_limit, "tokens/min")]
    return " · ".join(f"{value:,} {unit}" for value, unit in limits if value)


def _require_platform_admin(user) -> None:
    if not roles.is_platform_admin(user):
        raise PermissionDenied("Only platform admins change the catalogue.")


@login_required
def alias_routing(request, alias_id: int):
    _require_platform_admin(request.user)
    routes = AliasDeployment.objects.select_related("deployment").order_by("priority", "id")
    alias = get_object_or_404(ModelAlias.objects.prefetch_related(Prefetch("routes", queryset=routes)), pk=alias_id)
    deployments = tuple(route.deployment.name for route in alias.routes.all())
    stored = routing_mapping(alias.routing, deployments=deployments)
    form = AliasRoutingForm(request.POST or None, deployments=deployments, stored=stored)
    if request.method == "POST" and form.is_valid():
        try:
            services.update_alias(alias=alias, changes={"routing": form.routing()}, updated_by=request.user)
        except CatalogueError as exc:
            form.add_catalogue_errors(exc.errors)
        else:
            messages.success(request, f"Saved how {alias.name} routes. Gateways apply it within seconds.")
            return redirect(reverse("console:catalogue") + "#aliases")
    learned_router = routing_selectors.latest_learned_router(alias=alias)
    context = {
        "alias": alias,
        "form": form,
        "deployments": deployments,
        "stored": stored,
        "learned_router": learned_router,
        "learned_recommendation": learned_router and routing_selectors.learned_recommendation(router=learned_router),
        "stored_yaml": dump_catalogue_yaml({"routing": stored}) if stored else "",
    }
    return render_page(request, "console/alias_routing.html", context, section="catalogue")


@login_required
def deployment_routing(request, deployment_id: int):
    _require_platform_admin(request.user)
    deployment = get_object_or_404(Deployment.objects.select_related("provider"), pk=deployment_id)
    initial = {
        "quality": deployment.quality,
        "region": deployment.region,
        "tags": ", ".join(deployment.tags or ()),
        "rpm_limit": deployment.rpm_limit,
        "tpm_limit": deployment.tpm_limit,
    }
    form = DeploymentRoutingForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.update_deployment(deployment=deployment, changes=form.changes(), updated_by=request.user)
        except CatalogueError as exc:
            form.add_catalogue_errors(exc.errors)
        else:
            messages.success(request, f"Saved {deployment.name}. Gateways apply it within seconds.")
            return redirect(reverse("console:catalogue") + "#deployments")
    context = {"deployment": deployment, "form": form}
    return render_page(request, "console/deployment_routing.html", context, section="catalogue")
