"""The request-log explorer's reads: raw usage records, scoped like the dashboards, newest first.

Pages go by keyset ("older than this record"), not by offset and count: with millions of records a COUNT(*)
or a deep OFFSET costs seconds, while a keyset page is one index range scan whatever its depth.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db.models import Q, QuerySet
from django.http import Http404

from billing.dashboards.scope import Scope, visible_team
from billing.models import UsageRecord
from portal.models import Team

PAGE_SIZE = 50
DEFAULT_WINDOW = timedelta(days=7)
STATUS_CLASSES = {"2xx": (200, 300), "4xx": (400, 500), "5xx": (500, 600)}


def _moment(raw: str | None) -> datetime | None:
    """A datetime-local input ('2026-11-01T12:00') or ISO timestamp, read as UTC when it has no offset."""
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class Search:
    request_id: str = ""
    key_prefix: str = ""
    team: Team | None = None
    alias: str = ""
    status: str = ""  # "2xx" | "4xx" | "5xx" | an exact code | ""
    since: datetime | None = None
    until: datetime | None = None
    before: tuple[datetime, int] | None = None  # the keyset cursor: the last record of the previous page
    problems: list[str] = field(default_factory=list)

    def query(self) -> dict[str, str]:
        """The search as query parameters (without the cursor), for the next page's link."""
        params = {
            "request_id": self.request_id,
            "key_prefix": self.key_prefix,
            "team": str(self.team.pk) if self.team else "",
            "alias": self.alias,
            "status": self.status,
            "from": self.since.strftime("%Y-%m-%dT%H:%M") if self.since else "",
            "to": self.until.strftime("%Y-%m-%dT%H:%M") if self.until else "",
        }
        return {key: value for key, value in params.items() if value}


def search_from(scope: Scope, params, *, now: datetime) -> Search:
    search = Search(
        request_id=(params.get("request_id") or "").strip()[:64],
        key_prefix=(params.get("key_prefix") or "").strip().rstrip("…")[:32],
        alias=(params.get("alias") or "").strip()[:150],
        status=(params.get("status") or "").strip().lower()[:3],
        since=_moment(params.get("from")),
        until=_moment(params.get("to")),
    )
    if params.get("team"):
        try:
            search.team = visible_team(scope, int(params["team"]))
        except ValueError:
            raise Http404("No such team.") from None
    if search.status and search.status not in STATUS_CLASSES and not search.status.isdigit():
        search.problems.append("Status is a class (2xx, 4xx, 5xx) or a code such as 429.")
        search.status = ""
    if search.since is None and not search.request_id:
        # Without a lower bound, a search for something rare would scan every record ever kept.
        search.since = (now - DEFAULT_WINDOW).replace(second=0, microsecond=0)
    if cursor := params.get("before"):
        moment, _, record_id = cursor.rpartition("|")
        if (when := _moment(moment)) is not None and record_id.isdigit():
            search.before = (when, int(record_id))
    return search


def records_in_scope(scope: Scope) -> QuerySet[UsageRecord]:
    return UsageRecord.objects.filter(scope.q(tenant_field="tenant_id", team_field="team_id"))


def search_records(scope: Scope, search: Search) -> QuerySet[UsageRecord]:
    records = records_in_scope(scope)
    if search.request_id:
        return records.filter(request_id=search.request_id)
    if search.key_prefix:
        records = records.filter(key_prefix__startswith=search.key_prefix)
    if search.team is not None:
        records = records.filter(team_id=search.team.pk)
    if search.alias:
        records = records.filter(alias=search.alias)
    if search.status in STATUS_CLASSES:
        low, high = STATUS_CLASSES[search.status]
        records = records.filter(status__gte=low, status__lt=high)
    elif search.status:
        records = records.filter(status=int(search.status))
    if search.since is not None:
        records = records.filter(created_at__gte=search.since)
    if search.until is not None:
        records = records.filter(created_at__lt=search.until)
    if search.before is not None:
        moment, record_id = search.before
        records = records.filter(Q(created_at__lt=moment) | Q(created_at=moment, id__lt=record_id))
    return records.order_by("-created_at", "-id")


@dataclass
class RecordPage:
    records: list[UsageRecord]
    next_cursor: str  # "" on the last page


def page_of(records: QuerySet[UsageRecord], *, size: int = PAGE_SIZE) -> RecordPage:
    # One row more than shown tells whether there is an older page, without counting.
    rows = list(records[: size + 1])
    shown = rows[:size]
    has_more = len(rows) > size
    last = shown[-1] if shown else None
    cursor = f"{last.created_at.isoformat()}|{last.pk}" if has_more and last else ""
    return RecordPage(records=shown, next_cursor=cursor)


def record_in_scope(scope: Scope, request_id: str) -> UsageRecord:
    try:
        return records_in_scope(scope).get(request_id=request_id)
    except UsageRecord.DoesNotExist:
        raise Http404("No such request.") from None
