from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q, Sum
from django.utils import timezone

from billing.dashboards import model_names
from billing.dashboards.money import dollars
from billing.models import UsageRecord
from portal import roles
from portal.views.rendering import paginate, render_page

PERIOD = timedelta(days=30)
_TOTALS = {
    "requests": Count("id"),
    "errors": Count("id", filter=Q(status__gte=400)),
    "prompt_tokens": Sum("prompt_tokens"),
    "completion_tokens": Sum("completion_tokens"),
    "cost_usd": Sum("cost_usd"),
}


def _present(row: dict) -> dict:
    row = {key: row.get(key) or 0 for key in _TOTALS} | {k: v for k, v in row.items() if k not in _TOTALS}
    row["cost"] = dollars(row["cost_usd"])  # the dashboards' rule: $0.0042, $12.34
    row["tokens"] = row["prompt_tokens"] + row["completion_tokens"]
    # Counts as people read them (103,460); the numbers stay numbers for anything that computes with them.
    row["shown"] = {
        key: f"{row[key]:,}" for key in ("requests", "errors", "prompt_tokens", "completion_tokens", "tokens")
    }
    return row


@login_required
def usage(request):
    since = timezone.now() - PERIOD
    teams = roles.teams_of(request.user).select_related("tenant").order_by("tenant__name", "name")
    records = UsageRecord.objects.filter(team__in=teams, created_at__gte=since)
    page = paginate(request, teams)
    per_team = {
        row["team_id"]: row for row in records.filter(team__in=list(page)).values("team_id").annotate(**_TOTALS)
    }
    for team in page:
        team.usage = _present(per_team.get(team.pk, {}))
    # Grouped as the dashboards group them: calls to models the catalogue doesn't know are one entry.
    by_model = records.annotate(shown_alias=model_names.shown_model()).values("shown_alias").annotate(**_TOTALS)
    by_alias = [
        _present(row) | {"alias": row["shown_alias"]} for row in by_model.order_by("-cost_usd", "-requests")[:10]
    ]
    context = {
        "teams": page,
        "totals": _present(records.aggregate(**_TOTALS)),
        "by_alias": by_alias,
        "since": since,
        "period_days": PERIOD.days,
    }
    return render_page(request, "console/usage.html", context, section="usage")
