"""What a dashboard may show one user, and the filters they asked for, checked against it.

Members and team owners see their own teams; finance and tenant admins their whole tenant (including usage of
keys that belong to no team); platform admins everything. A tenant or team id outside that scope is a 404,
exactly like an id that does not exist, so ids of other tenants cannot be probed through the data endpoints.
"""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Q
from django.http import Http404
from django.utils import timezone

from billing.dashboards import model_names
from portal import roles
from portal.models import Membership, Team, Tenant

Role = Membership.Role

DEFAULT_RANGE_DAYS = 30
MAX_RANGE_DAYS = 400
# Up to two days, hourly rows draw a useful curve; beyond that daily rows are ~24x fewer to read.
HOURLY_UP_TO = timedelta(days=2)


@dataclass(frozen=True)
class Scope:
    """Tenants seen whole and teams seen one by one; `everything` for platform admins."""

    everything: bool = False
    tenant_ids: frozenset[int] = frozenset()
    team_ids: frozenset[int] = frozenset()

    def q(self, *, tenant_field: str = "tenant_id", team_field: str = "team_id") -> Q:
        if self.everything:
            return Q()
        if not self.tenant_ids and not self.team_ids:
            return Q(pk__in=[])
        return Q(**{f"{tenant_field}__in": self.tenant_ids}) | Q(**{f"{team_field}__in": self.team_ids})

    @property
    def is_empty(self) -> bool:
        return not self.everything and not self.tenant_ids and not self.team_ids


def scope_of(user) -> Scope:
    if roles.is_platform_admin(user):
        return Scope(everything=True)
    if not user or not user.is_authenticated:
        return Scope()
    memberships = Membership.objects.filter(user=user)
    tenant_wide = memberships.filter(team__isnull=True, role__in=[Role.TENANT_ADMIN, Role.FINANCE])
    own_teams = memberships.filter(team__isnull=False)
    return Scope(
        tenant_ids=frozenset(tenant_wide.values_list("tenant_id", flat=True)),
        team_ids=frozenset(own_teams.values_list("team_id", flat=True)),
    )


@dataclass(frozen=True)
class Filters:
    """A dashboard query: scope, optional tenant/team/alias, and the half-open day range [since, until)."""

    scope: Scope
    since: datetime
    until: datetime
    tenant: Tenant | None = None
    team: Team | None = None
    alias: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def granularity(self) -> str:
        return "hour" if self.until - self.since <= HOURLY_UP_TO else "day"

    @property
    def granularity_label(self) -> str:
        return "hourly" if self.granularity == "hour" else "daily"

    @property
    def last_day(self) -> date:
        return (self.until - timedelta(days=1)).date()

    @property
    def bucket_seconds(self) -> int:
        return 3600 if self.granularity == "hour" else 86400

    def q(
        self,
        *,
        tenant_field: str = "tenant_id",
        team_field: str = "team_id",
        alias_field: str = "alias",
        deployment_field: str = "deployment",
    ) -> Q:
        q = self.scope.q(tenant_field=tenant_field, team_field=team_field)
        if self.tenant is not None:
            q &= Q(**{tenant_field: self.tenant.pk})
        if self.team is not None:
            q &= Q(**{team_field: self.team.pk})
        if self.alias:
            q &= model_names.matching(self.alias, alias_field=alias_field, deployment_field=deployment_field)
        return q

    def as_query(self) -> dict[str, str]:
        """The filters as query parameters, for links to CSV and data endpoints."""
        query = {"from": self.since.date().isoformat(), "to": (self.until - timedelta(days=1)).date().isoformat()}
        if self.tenant is not None:
            query["tenant"] = str(self.tenant.pk)
        if self.team is not None:
            query["team"] = str(self.team.pk)
        if self.alias:
            query["alias"] = self.alias
        return query


def _id(raw: str | None) -> int | None:
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise Http404("No such id.") from None


def _day(raw: str | None) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None


def visible_tenant(scope: Scope, tenant_id: int) -> Tenant:
    if not scope.everything and tenant_id not in scope.tenant_ids:
        # A member's own teams don't open their tenant as a whole, and other tenants don't exist for them.
        raise Http404("No such tenant.")
    try:
        return Tenant.objects.get(pk=tenant_id)
    except Tenant.DoesNotExist:
        raise Http404("No such tenant.") from None


def visible_team(scope: Scope, team_id: int) -> Team:
    teams = Team.objects.select_related("tenant").filter(scope.q(tenant_field="tenant_id", team_field="pk"))
    try:
        return teams.get(pk=team_id)
    except Team.DoesNotExist:
        raise Http404("No such team.") from None


def filters_from(user, params, *, today: date | None = None) -> Filters:
    """Filters from a request's query parameters: ids outside the scope raise Http404; bad dates fall back to
    the default range and say so in `problems`."""
    scope = scope_of(user)
    today = today or timezone.now().date()
    problems = []
    first, last = _day(params.get("from")), _day(params.get("to"))
    if (params.get("from") and first is None) or (params.get("to") and last is None):
        problems.append("Dates are YYYY-MM-DD; showing the default range instead.")
    last = last or today
    first = first or last - timedelta(days=DEFAULT_RANGE_DAYS - 1)
    if first > last:
        first, last = last, first
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        first = last - timedelta(days=MAX_RANGE_DAYS - 1)
        problems.append(f"Ranges are limited to {MAX_RANGE_DAYS} days.")
    tenant_id, team_id = _id(params.get("tenant")), _id(params.get("team"))
    return Filters(
        scope=scope,
        since=datetime.combine(first, time.min, tzinfo=UTC),
        until=datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC),
        tenant=visible_tenant(scope, tenant_id) if tenant_id is not None else None,
        team=visible_team(scope, team_id) if team_id is not None else None,
        alias=(params.get("alias") or "").strip()[:150],
        problems=problems,
    )
