"""Finance and operator dashboards: pages (filters, figures' frames, tables) and the JSON behind their charts.

Pages and data endpoints resolve the same Filters, so a team or tenant id outside the user's scope is a 404
on both. Everything here reads aggregates (billing/dashboards/), never raw usage records.
"""

from datetime import timedelta
from urllib.parse import urlencode

import orjson
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.utils import timezone
from django.utils.text import slugify

from billing.aggregation import HISTOGRAM_RELATIVE_ERROR, aggregated_until
from billing.dashboards import budgets, chargeback, figures, finance, operations
from billing.dashboards.money import dollars
from billing.dashboards.scope import Filters, filters_from
from billing.dashboards.tables import TABLES
from billing.views import plotly_js
from portal.models import Team, Tenant
from portal.views.rendering import render_page
from routing.observability.metrics import stored_breaker_states

MAX_BUDGETS = 12  # burn-down charts on one page; the CSV has them all


def json_response(payload: dict) -> HttpResponse:
    # orjson: figures carry thousands of floats, and the stdlib encoder is the slowest step for 30 days hourly.
    return HttpResponse(orjson.dumps(payload), content_type="application/json")


def _stack(request) -> str:
    stack = request.GET.get("stack", "team")
    return stack if stack in finance.STACKS else "team"


def filter_choices(filters: Filters) -> dict:
    """What the filter bar offers: tenants only to users who see more than one, teams in scope, and aliases."""
    scope = filters.scope
    if scope.everything:
        tenants = Tenant.objects.order_by("name")
    else:
        tenants = Tenant.objects.filter(pk__in=scope.tenant_ids).order_by("name")
    teams = Team.objects.select_related("tenant").filter(scope.q(tenant_field="tenant_id", team_field="pk"))
    if filters.tenant is not None:
        teams = teams.filter(tenant=filters.tenant)
    tenants = list(tenants[:500])
    aliases = finance.aliases_in_scope(filters)
    return {
        "tenants": tenants if len(tenants) > 1 else [],
        "teams": list(teams.order_by("tenant__name", "name")[:500]),
        "aliases": aliases,
        "alias_not_listed": bool(filters.alias) and filters.alias not in {value for value, _ in aliases},
        "show_tenant_names": len(tenants) > 1,
    }


def _query(filters: Filters, **extra) -> str:
    return urlencode(filters.as_query() | extra)


def _dashboard_context(filters: Filters, *, dashboard: str) -> dict:
    return {
        "filters": filters,
        "choices": filter_choices(filters),
        "query": _query(filters),
        "dashboard": dashboard,
        "range_days": (filters.until - filters.since).days,
        "has_scope": not filters.scope.is_empty,
        "plotly_version": plotly_js.VERSION,
        "aggregated_until": aggregated_until(),
        "shows_within_s": round(
            settings.TOLLWAY_AGGREGATE_EVERY_S
            + settings.TOLLWAY_AGGREGATE_SETTLE_S
            + settings.TOLLWAY_USAGE_FLUSH_INTERVAL_S
        ),
    }


@login_required
def finance_dashboard(request):
    filters = filters_from(request.user, request.GET)
    totals = finance.totals(filters)
    budget_list = list(budgets.budgets_in_scope(filters)[:MAX_BUDGETS])
    context = _dashboard_context(filters, dashboard="finance") | {
        "totals": totals,
        "shown": {
            "cost": dollars(totals.cost_usd),
            "saved": dollars(totals.saved_usd),
            "per_1k": dollars(totals.cost_per_1k_requests) if totals.requests else "—",
            "requests": f"{totals.requests:,}",
        },
        "top_teams": finance.top_teams(filters),
        "top_keys": finance.top_keys(filters),
        "top_models": finance.top_aliases(filters),
        "top_prompts": finance.top_prompts(filters),
        "by_strategy": finance.savings_by_strategy(filters),
        "by_endpoint": finance.usage_by_endpoint(filters),
        "burn_downs": [
            (budget, budgets.budget_label(budget), budgets.burn_down(budget, now=timezone.now()))
            for budget in budget_list
        ],
        "stack": _stack(request),
        "stacks": list(finance.STACKS),
    }
    return render_page(request, "billing/finance.html", context, section="dashboards")


@login_required
def finance_data(request):
    filters = filters_from(request.user, request.GET)
    cost = finance.cost_over_time(filters, stack=_stack(request))
    axis = figures.TimeAxis.of(filters)
    payload = {
        "cost": figures.cost_over_time(cost, axis=axis),
        "savings": figures.savings_over_time(cost, axis=axis),
        "strategies": figures.savings_by_strategy(finance.savings_by_strategy(filters)),
        "budgets": {
            str(budget.pk): figures.burn_down(budgets.burn_down(budget))
            for budget in budgets.budgets_in_scope(filters)[:MAX_BUDGETS]
        },
        "is_empty": not cost.buckets,
        "granularity": filters.granularity,
    }
    return json_response(payload)


@login_required
def operator_dashboard(request):
    filters = filters_from(request.user, request.GET)
    points = operations.traffic_over_time(filters)
    overall = operations.traffic_totals(points)
    context = _dashboard_context(filters, dashboard="operator") | {
        "overall": overall,
        "deployments": operations.latency_by_deployment(filters),
        "prompts": operations.by_prompt_version(filters),
        "latency_error_percent": round(HISTOGRAM_RELATIVE_ERROR * 100, 1),
        "error_kind": "error type",
        # As this process's engine sees them (with Redis, every gateway process sees the same), for the
        # catalogue as stored.
        "breakers": sorted(stored_breaker_states().items()),
    }
    return render_page(request, "billing/operator.html", context, section="dashboards")


@login_required
def operator_data(request):
    filters = filters_from(request.user, request.GET)
    points = operations.traffic_over_time(filters)
    per_deployment = operations.latency_over_time(filters)
    axis = figures.TimeAxis.of(filters)
    payload = {
        "throughput": figures.throughput(points, axis=axis),
        "rates": figures.rates(points, axis=axis),
        "errors": figures.errors_by_type(operations.errors_by_type(filters), axis=axis),
        "latency": figures.latency_per_deployment(
            per_deployment, measure="latency_p95_ms", label="Latency p95", axis=axis
        ),
        "ttfb": figures.latency_per_deployment(per_deployment, measure="ttfb_p95_ms", label="TTFB p95", axis=axis),
        "is_empty": not points,
        "granularity": filters.granularity,
    }
    return json_response(payload)


@login_required
def chargeback_report(request):
    filters = filters_from(request.user, request.GET)
    this_month = timezone.now().date().replace(day=1)
    month = chargeback.parse_month(request.GET.get("month"), default=this_month)
    report = chargeback.chargeback(filters, month=month)
    previous = (month - timedelta(days=1)).replace(day=1)
    following = (month + timedelta(days=32)).replace(day=1)
    extra = {"month": f"{month:%Y-%m}"}
    if filters.tenant is not None:
        extra["tenant"] = str(filters.tenant.pk)
    if filters.team is not None:
        extra["team"] = str(filters.team.pk)
    context = _dashboard_context(filters, dashboard="chargeback") | {
        "report": report,
        "rows": [row | {"cost": dollars(row["cost_usd"])} for row in report.rows],
        "total_cost": dollars(report.total.cost_usd),
        "total_saved": dollars(report.total.saved_usd),
        "month": month,
        "previous_month": f"{previous:%Y-%m}",
        "next_month": f"{following:%Y-%m}" if following <= this_month else "",
        "csv_query": urlencode(extra),
    }
    return render_page(request, "billing/chargeback.html", context, section="dashboards")


@login_required
def table_csv(request, table: str):
    if table not in TABLES:
        raise Http404("No such table.")
    filters = filters_from(request.user, request.GET)
    body = TABLES[table].csv(filters, request.GET)
    query = filters.as_query()
    stamp = request.GET.get("month", "") if table == "chargeback" else f"{query['from']}_{query['to']}"
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    filename = f"tollway-{table}-{slugify(stamp) or 'month'}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
