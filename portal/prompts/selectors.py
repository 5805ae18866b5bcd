"""Reading prompt templates: who sees which. A template's text is read by its team (any role) and the
tenant's admins and finance; a shared one by every member of its tenant. Subscribers of a product that bundles
a template call it through /v1 but read nothing here. Anything a user cannot read answers 404, not 403."""

from django.db.models import OuterRef, Prefetch, Q, QuerySet, Subquery

from core import prompts as rendering
from portal import roles
from portal.models import Membership
from portal.prompts.models import PromptPublication, PromptTemplate, PromptVersion
from portal.prompts.services import PromptInvalid, require_storable


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


def with_read_details(templates: QuerySet[PromptTemplate]) -> QuerySet[PromptTemplate]:
    """The templates with what their read shape shows, in a fixed number of queries however many there are:
    `latest_version` (a number or None), `current_rows` (the current publications) and their products."""
    latest = PromptVersion.objects.filter(template=OuterRef("pk")).order_by("-number").values("number")[:1]
    current = PromptPublication.objects.filter(is_current=True).order_by("environment")
    return (
        templates.select_related("team", "tenant")
        .prefetch_related("products", Prefetch("publications", queryset=current, to_attr="current_rows"))
        .annotate(latest_version=Subquery(latest))
        .order_by("slug", "pk")
    )


def version_of(template: PromptTemplate, number: int) -> PromptVersion | None:
    return template.versions.select_related("author").filter(number=number).first()


# A preview is bounded as a call's render is (core/prompts.py).
MAX_RENDERED_CHARS = rendering.MAX_RENDERED_CHARS


def render_preview(template: PromptTemplate, *, version: int | None, values) -> list[dict]:
    """The messages `values` give with this version (None: the draft), as a call would send them. Raises
    PromptInvalid naming the field (`version`, `variables.ticker`)."""
    source = template
    if version is not None:
        source = version_of(template, version)
        if source is None:
            raise PromptInvalid(f"{template.slug} has no version {version}", param="version")
    specs = rendering.specs_from_dict(source.variables)
    require_storable(values, param="variables")  # a lone surrogate could not even be sent back as JSON
    try:
        return rendering.render(source.messages, specs, values)
    except rendering.PromptError as exc:
        raise PromptInvalid(exc.message, param=exc.param) from exc
