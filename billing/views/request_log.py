"""The request-log explorer: search raw usage records and read one request's routing, timings and cost.

The one console page that reads raw records: it looks up individual requests, it never sums them.
"""

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.utils import timezone

from billing.dashboards import request_log
from billing.dashboards.money import dollars
from billing.dashboards.scope import scope_of
from portal.models import Team
from portal.views.rendering import render_page, usd


@login_required
def request_list(request):
    scope = scope_of(request.user)
    search = request_log.search_from(scope, request.GET, now=timezone.now())
    page = request_log.page_of(request_log.search_records(scope, search))
    for record in page.records:
        record.cost = dollars(record.cost_usd)
    teams = Team.objects.select_related("tenant").filter(scope.q(tenant_field="tenant_id", team_field="pk"))
    context = {
        "search": search,
        "page": page,
        "teams": list(teams.order_by("tenant__name", "name")[:500]),
        "status_choices": list(request_log.STATUS_CLASSES),
        "next_query": urlencode(search.query() | {"before": page.next_cursor}) if page.next_cursor else "",
        "is_paged": bool(search.before),
        "first_query": urlencode(search.query()),
        "has_scope": not scope.is_empty,
    }
    return render_page(request, "billing/requests.html", context, section="requests")


@login_required
def request_detail(request, request_id: str):
    record = request_log.record_in_scope(scope_of(request.user), request_id)
    decision = record.decision if isinstance(record.decision, dict) else None
    context = {
        "record": record,
        "cost": usd(record.cost_usd, max_places=10),
        "baseline_cost": usd(record.baseline_cost_usd, max_places=10),
        "saved": usd(record.baseline_cost_usd - record.cost_usd, max_places=10),
        "retries": max(record.attempts - 1, 0),
        "decision": decision,
        "candidates": [
            (name, (decision.get("estimates") or {}).get(name, "")) for name in decision.get("candidates", [])
        ]
        if decision
        else [],
        "total_tokens": record.prompt_tokens + record.completion_tokens,
        "gateway_ms": (
            round(record.latency_ms - record.upstream_latency_ms, 1)
            if record.latency_ms is not None and record.upstream_latency_ms is not None
            else None
        ),
    }
    return render_page(request, "billing/request_detail.html", context, section="requests")
