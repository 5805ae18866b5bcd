"""GET /api/v1/usage/summary: the query string in, the totals (billing/api/usage_totals.py) out, as JSON or CSV."""

import csv
import io
from datetime import UTC, date, datetime, time, timedelta

from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import exceptions, serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.aggregation import aggregate_pending_when_inline
from billing.api.usage_totals import GROUPS, MEASURES, SummaryRange, usage_summary
from portal import roles
from portal.api.views import APIDefaults

DEFAULT_PERIOD = timedelta(days=30)


@extend_schema_field({"type": "string", "anyOf": [{"format": "date"}, {"format": "date-time"}]})
class MomentField(serializers.Field):
    """An ISO date (its midnight, UTC) or datetime (UTC when it has no offset)."""

    default_error_messages = {"invalid": "use an ISO date (2026-11-01) or datetime (2026-11-01T13:00:00Z)"}

    def to_internal_value(self, data) -> datetime:
        text = str(data).strip()
        try:
            if len(text) == 10:
                return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
            moment = datetime.fromisoformat(text)
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        except (ValueError, OverflowError):  # OverflowError: 0001-01-01T00:00:00+01:00 is before year 1 in UTC
            self.fail("invalid")

    def to_representation(self, value: datetime) -> str:
        return value.isoformat().replace("+00:00", "Z")


class UsageSummaryQuerySerializer(serializers.Serializer):
    """The query string of GET /api/v1/usage/summary."""

    group_by = serializers.ChoiceField(choices=list(GROUPS), default="team")
    since = MomentField(required=False, help_text="Inclusive; rounded down to the hour. Default: until - 30 days.")
    until = MomentField(required=False, help_text="Exclusive; rounded up to the hour. Default: now.")
    tenant = serializers.IntegerField(required=False, min_value=1, help_text="Only this tenant's usage.")

    def validate(self, attrs: dict) -> dict:
        try:
            until = _ceil_hour(attrs.get("until") or timezone.now())
            since = _floor_hour(attrs.get("since") or until - DEFAULT_PERIOD)
        except OverflowError:
            raise serializers.ValidationError({"until": ["out of range"]}) from None
        if since >= until:
            raise serializers.ValidationError({"since": ["must be before until"]})
        return {**attrs, "span": SummaryRange(since=since, until=until)}


class UsageSummaryRowSerializer(serializers.Serializer):
    """One group. Only the columns of the requested group_by appear; money is an exact decimal string."""

    team_id = serializers.IntegerField(required=False, allow_null=True)
    team_name = serializers.CharField(required=False)
    api_key_id = serializers.IntegerField(required=False, allow_null=True)
    key_prefix = serializers.CharField(required=False)
    alias = serializers.CharField(required=False)
    deployment = serializers.CharField(required=False)
    provider = serializers.CharField(required=False)
    strategy = serializers.CharField(required=False, help_text='The routing strategy; "" for calls never routed.')
    endpoint = serializers.CharField(required=False, help_text="The API called: chat.completions, responses, ...")
    prompt = serializers.CharField(required=False, help_text='The prompt template\'s slug; "" for calls without one.')
    prompt_version = serializers.IntegerField(required=False, allow_null=True)
    day = serializers.DateField(required=False)
    requests = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    cost_usd = serializers.DecimalField(max_digits=30, decimal_places=10)
    baseline_cost_usd = serializers.DecimalField(max_digits=30, decimal_places=10)
    saved_usd = serializers.DecimalField(max_digits=30, decimal_places=10, help_text="baseline_cost_usd - cost_usd")
    latency_p50_ms = serializers.FloatField(allow_null=True)
    latency_p95_ms = serializers.FloatField(allow_null=True)

    def to_representation(self, row: dict) -> dict:
        shown = super().to_representation(row)
        return {name: shown[name] for name in row if name in shown}


class UsageSummarySerializer(serializers.Serializer):
    group_by = serializers.ChoiceField(choices=list(GROUPS))
    since = MomentField()
    until = MomentField()
    columns = serializers.ListField(child=serializers.CharField())
    rows = UsageSummaryRowSerializer(many=True)


def summary_columns(group_by: str) -> list[str]:
    return [*GROUPS[group_by], *MEASURES]


def _floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(moment: datetime) -> datetime:
    hour = _floor_hour(moment)
    return hour if hour == moment else hour + timedelta(hours=1)


class UsageSummaryCsvRenderer(BaseRenderer):
    """`?format=csv` (or Accept: text/csv): the summary's rows as CSV, one column per key of the JSON rows."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=data["columns"], lineterminator="\n")
        writer.writeheader()
        for row in data["rows"]:
            writer.writerow({name: "" if row.get(name) is None else row[name] for name in data["columns"]})
        return out.getvalue().encode(self.charset)


class UsageSummaryView(APIDefaults, APIView):
    """Usage over a range (default: the last 30 days), one row per team, key, alias, deployment, provider,
    routing strategy, endpoint (the API called), prompt, prompt version or day (UTC), from the hourly and daily
    aggregates. Members and team owners see their teams' usage, tenant admins and finance their tenant's,
    platform admins everything. `format=csv` answers the same rows as CSV.
    Latency percentiles are estimates from merged histograms (within 4.5%)."""

    renderer_classes = [JSONRenderer, UsageSummaryCsvRenderer]
    extra_error_codes = ("404",)  # ?tenant= names no tenant the caller can see

    @extend_schema(parameters=[UsageSummaryQuerySerializer], responses={200: UsageSummarySerializer})
    def get(self, request: Request) -> Response:
        query = UsageSummaryQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        tenant = None
        if "tenant" in params:
            # Another tenant's id answers 404, like one that does not exist.
            tenant = get_object_or_404(roles.tenants_of(request.user), pk=params["tenant"])
        aggregate_pending_when_inline()
        span = params["span"]
        rows = usage_summary(user=request.user, group_by=params["group_by"], span=span, tenant=tenant)
        summary = {
            "group_by": params["group_by"],
            "since": span.since,
            "until": span.until,
            "columns": summary_columns(params["group_by"]),
            "rows": rows,
        }
        return Response(UsageSummarySerializer(summary).data)

    def perform_content_negotiation(self, request: Request, force: bool = False):
        if request.method == "OPTIONS":
            return JSONRenderer(), JSONRenderer.media_type  # DRF's metadata is a dict, not summary rows
        try:
            return super().perform_content_negotiation(request, force=force)
        except Http404:
            # DRF answers an unknown ?format= with 404; it is a bad parameter.
            raise exceptions.ValidationError({"format": ["must be json or csv"]}) from None

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        # Errors are JSON even when CSV was asked for: a CSV of an error message helps nobody.
        self.request.accepted_renderer, self.request.accepted_media_type = JSONRenderer(), "application/json"
        return response
