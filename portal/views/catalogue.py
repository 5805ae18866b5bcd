"""The catalogue in the console: products, models (aliases and how they route), deployments with their prices
and routing facts, providers. Platform admins change an alias's routing and a deployment's routing facts here,
through routing/services.py, so the console refuses exactly what the catalogue importer refuses, and says where.
"""

import re
from collections import defaultdict

import yaml
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Prefetch, Q
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse

from core.values import PART_TWO_STRATEGIES, STRATEGIES
from portal import roles, selectors
from portal.errors import PortalError
from portal.forms import NewProductForm
from portal.models import Subscription
from portal.services.products import create_product
from portal.views import access
from portal.views.rendering import as_sentence, paginate, render_page, usd
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

_STRATEGY_LABELS = {
    "priority": "priority: in the order listed, the first that answers (the default)",
    "cheapest": "cheapest: by each request's estimated cost",
    "lowest-latency": "lowest-latency: by recent latency and time to first token",
    "weighted": "weighted: at random, in proportion to the weights below",
    "round-robin": "round-robin: each deployment in turn",
    "least-busy": "least-busy: the fewest calls in flight",
    "cascade": "cascade: the cheapest step first, climbing when its answer fails a check",
    "semantic": "semantic: by the meaning of the prompt, to the route of its nearest example",
    "bandit": "bandit: learns from feedback which deployment earns the most (Thompson sampling)",
}
_RETRY_FIELDS = {  # key in routing.retry -> (label, whole number, default)
    "max_attempts": ("Attempts in all", True, "each deployment once"),
    "base_delay_ms": ("First backoff (ms)", True, 100),
    "max_delay_ms": ("Longest backoff (ms)", True, 2000),
    "deadline_ms": ("Deadline per call (ms)", True, 30000),
}
_BREAKER_FIELDS = {
    "consecutive_failures": ("Open after failures in a row", True, 5),
    "error_rate": ("…or at this failed share (0-1)", False, 0.5),
    "min_calls": ("…of at least this many calls", True, 10),
    "window_s": ("…in the last (s)", False, 30),
    "cooldown_s": ("Stay open for (s)", False, 30),
    "half_open_probes": ("Then let through (calls)", True, 1),
}
# A problem's path inside an entry, e.g. "deployments[0].tags[1]: ..." -> "tags[1]", "..."
_PROBLEM = re.compile(r"^[a-z]+\[\d+\]\.(?P<path>[^:]+): (?P<message>.*)$", re.S)
# Limits on what the forms read; the importer checks the values themselves (and says where they are wrong).
_NAMES_MAX_CHARS = 2000


def _number_field(label: str, *, is_whole: bool, default) -> forms.Field:
    field = forms.IntegerField if is_whole else forms.FloatField
    # No bounds here: the importer's checks apply, with their paths (routing.retry.max_attempts: ...).
    return field(required=False, label=label, widget=forms.NumberInput(attrs={"placeholder": default, "step": "any"}))


def _names(text: str) -> list[str]:
    """ "a, b c" -> ["a", "b", "c"]"""
    return [name for name in re.split(r"[\s,]+", text) if name]


class CatalogueEntryForm(forms.Form):
    """A form whose refusals come from the catalogue importer: each goes beside the field its path names."""

    def field_for(self, path: str) -> str | None:
        return None

    def add_catalogue_errors(self, errors: list[str]) -> None:
        for error in errors:
            match = _PROBLEM.match(error)
            if match is None:
                self.add_error(None, error)
                continue
            # The message keeps its path, so an error reads the same as the importer's and the API's.
            self.add_error(self.field_for(match["path"]), f"{match['path']}: {match['message']}")


# --- the cascade strategy's `cascade:` mapping, edited as YAML (issue 12) --------------------------------------
_CASCADE_MAX_CHARS = 10_000


def _cascade_text(stored: dict) -> str:
    return dump_catalogue_yaml(stored["cascade"]) if "cascade" in stored else ""


def _parse_cascade_text(text: str):
    """The textarea's YAML (JSON is YAML too) as a mapping, for the importer's own checks; None when empty."""
    if not text.strip():
        return None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise forms.ValidationError(f"Not valid YAML: {str(exc)[:200]}") from None
    if not isinstance(value, dict):
        raise forms.ValidationError("Must be a mapping with steps, checks and optionally max_cost_usd.")
    return value


# --- the semantic strategy's `routes:` list, edited as YAML (issue 12) ------------------------------------------
_ROUTES_MAX_CHARS = 120_000  # the policy's own bound on its examples (routing/engine/policy.py) is 100,000


def _routes_text(stored: dict) -> str:
    return dump_catalogue_yaml(stored["routes"]) if "routes" in stored else ""


def _parse_routes_text(text: str):
    if not text.strip():
        return None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise forms.ValidationError(f"Not valid YAML: {str(exc)[:200]}") from None
    if not isinstance(value, list):
        raise forms.ValidationError("Must be a list of routes, each with name, target and examples.")
    return value


class AliasRoutingForm(CatalogueEntryForm):
    strategy = forms.ChoiceField(label="Strategy")
    routes = forms.CharField(
        required=False,
        max_length=_ROUTES_MAX_CHARS,
        label="Routes",
        help_text="For the semantic strategy, in YAML: a list of routes, each with a name, a target (one of this "
        "alias's deployments or another alias) and example prompts.",
        widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false"}),
    )
    threshold = forms.FloatField(
        required=False,
        label="Similarity threshold",
        help_text="0 to 1: a prompt less similar than this to every example goes to the default.",
        widget=forms.NumberInput(attrs={"placeholder": "0.6", "step": "any"}),
    )
    semantic_default = forms.CharField(
        required=False,
        max_length=_NAMES_MAX_CHARS,
        label="Default",
        help_text="A deployment or another alias for prompts below the threshold; empty: the deployments in order.",
    )
    cascade = forms.CharField(
        required=False,
        max_length=_CASCADE_MAX_CHARS,
        label="Cascade",
        help_text="For the cascade strategy, in YAML: steps: [cheap, premium], checks: [{type: json}], "
        'max_cost_usd: "0.05".',
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
    )
    min_quality = forms.FloatField(
        required=False,
        label="Quality floor",
        help_text="0 to 1: deployments scored below it (or with no score) are skipped. A call may raise it.",
        widget=forms.NumberInput(attrs={"placeholder": "none", "step": "any"}),
    )
    fallbacks = forms.CharField(
        required=False,
        max_length=_NAMES_MAX_CHARS,
        label="Fallback aliases",
        help_text="Other aliases, tried in this order when all of this one's deployments fail. Separate with commas.",
    )

    def __init__(self, *args, deployments: tuple[str, ...], stored: dict, **kwargs) -> None:
        retry, breaker = stored.get("retry", {}), stored.get("breaker", {})
        initial = {
            "strategy": stored.get("strategy", "priority"),
            "min_quality": stored.get("min_quality"),
            "fallbacks": ", ".join(stored.get("fallbacks", [])),
            **{f"retry_{key}": value for key, value in retry.items()},
            **{f"breaker_{key}": value for key, value in breaker.items()},
            **{f"weight_{name}": value for name, value in stored.get("weights", {}).items()},
        }
        initial["cascade"] = _cascade_text(stored)
        initial["routes"] = _routes_text(stored)
        initial["threshold"] = stored.get("threshold")
        initial["semantic_default"] = stored.get("default", "")
        super().__init__(*args, initial=initial, **kwargs)
        self.deployments = deployments
        # Part two's strategies are set in the catalogue file; one already set stays choosable here.
        offered = [
            s for s in STRATEGIES if s not in PART_TWO_STRATEGIES or s in ("cascade", "semantic", initial["strategy"])
        ]
        self.fields["strategy"].choices = [(s, _STRATEGY_LABELS.get(s, s)) for s in offered]
        for name in deployments:
            self.fields[f"weight_{name}"] = _number_field(name, is_whole=False, default="none")
        for key, (label, is_whole, default) in _RETRY_FIELDS.items():
            self.fields[f"retry_{key}"] = _number_field(label, is_whole=is_whole, default=default)
        for key, (label, is_whole, default) in _BREAKER_FIELDS.items():
            self.fields[f"breaker_{key}"] = _number_field(label, is_whole=is_whole, default=default)
        # What the form has no fields for (part two's experiment and bandit) is kept as stored.
        self.kept = {key: stored[key] for key in ("experiment", "bandit") if key in stored}

    def weight_fields(self):
        return [self[f"weight_{name}"] for name in self.deployments]

    def retry_fields(self):
        return [self[f"retry_{key}"] for key in _RETRY_FIELDS]

    def breaker_fields(self):
        return [self[f"breaker_{key}"] for key in _BREAKER_FIELDS]

    def routing(self) -> dict:
        """The `routing:` mapping the form describes (only what was filled in), for the importer to check."""
        data = self.cleaned_data
        mapping: dict = {"strategy": data["strategy"]}
        if data["min_quality"] is not None:
            mapping["min_quality"] = data["min_quality"]
        weights = {name: data[f"weight_{name}"] for name in self.deployments if data[f"weight_{name}"] is not None}
        if weights:
            mapping["weights"] = weights
        if fallbacks := _names(data["fallbacks"]):
            mapping["fallbacks"] = fallbacks
        for section, keys in (("retry", _RETRY_FIELDS), ("breaker", _BREAKER_FIELDS)):
            values = {key: data[f"{section}_{key}"] for key in keys if data[f"{section}_{key}"] is not None}
            if values:
                mapping[section] = values
        if data.get("cascade"):
            mapping["cascade"] = data["cascade"]
        # Whatever the strategy, filled-in routes are sent: the importer refuses them beside another strategy
        # (saying so beside the field) rather than this form dropping them.
        if data.get("routes"):
            mapping["routes"] = data["routes"]
        if data.get("threshold") is not None:
            mapping["threshold"] = data["threshold"]
        if data.get("semantic_default", "").strip():
            mapping["default"] = data["semantic_default"].strip()
        return {**mapping, **self.kept}

    def clean_routes(self):
        return _parse_routes_text(self.cleaned_data["routes"])

    def clean_cascade(self):
        return _parse_cascade_text(self.cleaned_data["cascade"])

    def field_for(self, path: str) -> str | None:
        parts = path.split(".")
        if parts[0] != "routing" or len(parts) == 1:
            return None
        key = re.sub(r"\[\d+\]$", "", parts[1])
        if key == "cascade":
            return "cascade"
        if key in ("routes", "threshold"):
            return key
        if key == "default":
            return "semantic_default"
        if key in ("strategy", "min_quality", "fallbacks"):
            return key
        if len(parts) > 2 and key in ("weights", "retry", "breaker"):
            name = f"{key.removesuffix('s')}_{parts[2]}"
            return name if name in self.fields else None
        return None


class DeploymentRoutingForm(CatalogueEntryForm):
    quality = forms.FloatField(
        required=False,
        label="Quality",
        help_text="Your score for this model, from 0 to 1; an alias's quality floor compares against it.",
        widget=forms.NumberInput(attrs={"placeholder": "none", "step": "any"}),
    )
    region = forms.CharField(
        required=False,
        max_length=_NAMES_MAX_CHARS,
        label="Region",
        help_text="Where it runs, e.g. eu: teams limited to some regions only reach deployments in them.",
    )
    tags = forms.CharField(
        required=False,
        max_length=_NAMES_MAX_CHARS,
        label="Tags",
        help_text="e.g. zero-retention; teams may require some. Separate with commas.",
    )
    rpm_limit = forms.IntegerField(required=False, label="Requests per minute", help_text="The provider's quota.")
    tpm_limit = forms.IntegerField(required=False, label="Tokens per minute", help_text="The provider's quota.")

    def changes(self) -> dict:
        data = self.cleaned_data
        return {**data, "region": data["region"].strip(), "tags": _names(data["tags"])}

    def field_for(self, path: str) -> str | None:
        key = re.sub(r"\[\d+\]$", "", path)
        return key if key in self.fields else None


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
    context = {
        "alias": alias,
        "form": form,
        "deployments": deployments,
        "stored": stored,
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
