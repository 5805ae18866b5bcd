"""The A/B experiment comparison of one alias, under the dashboards: same filters, scope and 404s as they."""

from django.contrib.auth.decorators import login_required

from billing.aggregation import HISTOGRAM_RELATIVE_ERROR
from billing.dashboards import experiments
from billing.dashboards.money import dollars
from billing.dashboards.scope import filters_from
from billing.views.dashboards import _dashboard_context
from portal.views.rendering import render_page


@login_required
def experiment_comparison(request, alias_id: int):
    alias = experiments.visible_alias(request.user, alias_id)
    filters = experiments.bounded(filters_from(request.user, request.GET))
    compared = experiments.compare_arms(filters, alias=alias) if not filters.scope.is_empty else []
    for experiment in compared:
        for arm in experiment.arms:
            arm.shown = {"cost": dollars(arm.cost_usd), "per_request": dollars(arm.cost_per_request)}
    context = _dashboard_context(filters, dashboard="experiments") | {
        "alias": alias,
        "current": experiments.current_experiment(alias),
        "experiments": compared,
        "hide_alias": True,
        "latency_error_percent": round(HISTOGRAM_RELATIVE_ERROR * 100, 1),
    }
    return render_page(request, "billing/experiment.html", context, section="dashboards")
