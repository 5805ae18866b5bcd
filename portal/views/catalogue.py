from collections import defaultdict

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Prefetch, Q
from django.shortcuts import redirect

from portal import roles, selectors
from portal.errors import PortalError
from portal.forms import NewProductForm
from portal.models import Subscription
from portal.services.products import create_product
from portal.views import access
from portal.views.rendering import as_sentence, paginate, render_page, usd
from routing.models import AliasDeployment, Deployment, ModelAlias, Provider

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
    for deployment in deployments:
        deployment.input_price = usd(deployment.input_per_1m)
        deployment.output_price = usd(deployment.output_per_1m)
        deployment.cached_price = usd(deployment.cached_input_per_1m) if deployment.cached_input_per_1m else ""
        deployment.context = f"{deployment.context_window:,}" if deployment.context_window else ""
    routes = AliasDeployment.objects.select_related("deployment").order_by("priority", "id")
    aliases = paginate(
        request,
        ModelAlias.objects.prefetch_related(Prefetch("routes", queryset=routes)).order_by("name"),
        param="aliases",
    )
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
