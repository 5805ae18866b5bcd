"""Reading prompt templates: who sees which. A template's text is read by its team (any role) and the
tenant's admins and finance; a shared one by every member of its tenant. Subscribers of a product that bundles
a template call it through /v1 but read nothing here. Anything a user cannot read answers 404, not 403."""

from django.db.models import Q, QuerySet

from portal import roles
from portal.models import Membership
from portal.prompts.models import PromptTemplate


def templates_visible_to(user) -> QuerySet[PromptTemplate]:
    if roles.is_platform_admin(user):
        return PromptTemplate.objects.all()
    if not user or not user.is_authenticated:
        return PromptTemplate.objects.none()
    tenants = Membership.objects.filter(user=user).values("tenant")
    return PromptTemplate.objects.filter(
        Q(team__in=roles.teams_of(user)) | Q(is_shared=True, tenant__in=tenants)
    ).distinct()


def can_edit(user, template: PromptTemplate) -> bool:
    return roles.can_manage_team(user, template.team)


def versions_of(template: PromptTemplate):
    return template.versions.order_by("-number")


def current_publications(template: PromptTemplate) -> dict[str, dict[str, int]]:
    """environment -> split, for what each environment serves now."""
    return {p.environment: p.split for p in template.publications.filter(is_current=True)}


def publication_history(template: PromptTemplate, environment: str | None = None):
    rows = template.publications.select_related("published_by").order_by("-created_at", "-pk")
    return rows.filter(environment=environment) if environment else rows
