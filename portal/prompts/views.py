"""Prompt templates in the console: the list, the draft's editor with a preview, versions with their diffs,
what each environment serves (publish, split, roll back) and test runs kept as examples.

Reads go through selectors.templates_visible_to, so another tenant's template, or one of a team the user is
not in, is a 404 whatever the id; inside what they see, a write they may not make is a 403. Every write is a
service call, so the console refuses exactly what the REST API and import_prompts refuse, and says where.
"""

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from core import prompts as rendering
from portal import roles
from portal.errors import NotAllowed
from portal.models import Subscription
from portal.prompts import examples, selectors, services
from portal.prompts.forms import EnvironmentForm, PromptEditorForm, VersionForm, typed_values
from portal.prompts.models import PromptPublication, PromptTemplate, PromptVersion
from portal.views import access
from portal.views.rendering import paginate, render_page, usd
from routing.models import AliasDeployment, ModelAlias

MAX_JSON_BODY_BYTES = 1_000_000


def as_sentence(error) -> str:
    # Not capitalised: refusals often start with a variable's name ("words must be an integer").
    message = error.message.strip()
    return message + ("" if message.endswith((".", "!", "?")) else ".")


def template_to_view(user, template_id: int) -> PromptTemplate:
    visible = selectors.templates_visible_to(user).select_related("team", "tenant")
    return get_object_or_404(visible, pk=template_id)


def template_to_edit(user, template_id: int) -> PromptTemplate:
    template = template_to_view(user, template_id)
    if not selectors.can_edit(user, template):
        raise PermissionDenied("Only the team's owners and the organisation's admins change its prompts.")
    return template


def _page(request, name: str, template: PromptTemplate | None, context: dict, *, tab: str = ""):
    if template is not None:
        context = {"prompt": template, "can_edit": selectors.can_edit(request.user, template), "tab": tab, **context}
    return render_page(request, f"console/prompts/{name}.html", context, section="prompts")


# --- the list and the editor ---------------------------------------------------------------------------------


@login_required
def prompt_list(request):
    templates = selectors.templates_visible_to(request.user).select_related("team", "tenant").order_by("slug")
    page = paginate(request, templates)
    # What each listed template serves, in one query rather than one per row.
    serving: dict[int, list] = {template.pk: [] for template in page}
    current = PromptPublication.objects.filter(template__in=list(page), is_current=True).order_by("environment")
    for publication in current:
        serving[publication.template_id].append((publication.environment, _split_label(publication.split)))
    context = {
        "rows": [(template, serving[template.pk]) for template in page],
        "page": page,
        "may_create": access.manageable_teams(request.user).exists(),
    }
    return render_page(request, "console/prompts/list.html", context, section="prompts")


def _preview(form: PromptEditorForm) -> list[dict] | None:
    """The draft's messages rendered with the sample values, or None with each error beside its field."""
    try:
        messages_, variables = services.clean_text_and_variables(form.messages(), form.variables())
    except services.PromptInvalid as exc:
        form.add_prompt_error(as_sentence(exc), exc.param)
        return None
    values, errors = form.samples()
    for name, error in errors.items():
        form.add_prompt_error(error, f"variables.{name}")
    if errors:
        return None
    try:
        return rendering.render(messages_, rendering.specs_from_dict(variables), values)
    except rendering.PromptError as exc:
        form.add_prompt_error(as_sentence(exc), exc.param)
        return None


def _editor(request, form: PromptEditorForm, template: PromptTemplate | None, *, preview=None):
    context = {
        "form": form,
        "preview": preview,
        "editable": template is None or selectors.can_edit(request.user, template),
        "roles": rendering.ROLES,
        "variable_types": rendering.VARIABLE_TYPES,
        # The rows the page's script copies when a message is added or a new variable is named.
        "blank_message": {"role": "user", "content": "", "error": ""},
        "blank_variable": {
            "name": "__name__",
            "type": "string",
            "required": True,
            "default": "",
            "values": "",
            "sample": "",
        },
    }
    return _page(request, "editor", template, context, tab="draft")


@login_required
def prompt_new(request):
    teams = access.manageable_teams(request.user)
    if not teams.exists():
        raise PermissionDenied("Only team owners and the organisation's admins write prompts.")
    form = PromptEditorForm(request.POST or None, teams=teams)
    if request.method != "POST":
        return _editor(request, form, None)
    if request.POST.get("action") == "preview":
        form.is_valid()
        return _editor(request, form, None, preview=_preview(form))
    if form.is_valid():
        draft = form.draft()
        if not form.has_row_errors():
            try:
                template = services.create_template(
                    actor=request.user, team=form.cleaned_data["team"], slug=form.cleaned_data["slug"], **draft
                )
            except services.PromptInvalid as exc:
                form.add_prompt_error(as_sentence(exc), exc.param)
            except NotAllowed as exc:
                raise PermissionDenied(exc.message) from exc
            else:
                messages.success(request, f"Created {template.slug}. Freeze the draft as version 1 to publish it.")
                return redirect("console:prompt", template.pk)
    return _editor(request, form, None)


@login_required
def prompt_detail(request, template_id: int):
    if request.method == "POST":
        template = template_to_edit(request.user, template_id)
    else:
        template = template_to_view(request.user, template_id)
    form = PromptEditorForm(request.POST or None, template=template)
    if request.method != "POST":
        return _editor(request, form, template)
    if request.POST.get("action") == "preview":
        form.is_valid()
        return _editor(request, form, template, preview=_preview(form))
    if form.is_valid():
        draft = form.draft()
        if not form.has_row_errors():
            try:
                services.update_draft(template, actor=request.user, **draft)
            except services.PromptInvalid as exc:
                form.add_prompt_error(as_sentence(exc), exc.param)
            else:
                messages.success(request, "Saved the draft. Callers get it once you freeze and publish a version.")
                return redirect("console:prompt", template.pk)
        template.refresh_from_db()
    return _editor(request, form, template)


# --- versions ------------------------------------------------------------------------------------------------


def _diff_lines(diff: str) -> list[tuple[str, str]]:
    def kind(line: str) -> str:
        if line.startswith(("+++", "---")):
            return "file"
        if line.startswith("@@"):
            return "hunk"
        return {"+": "add", "-": "del"}.get(line[:1], "same")

    return [(kind(line), line) for line in diff.splitlines()]


@login_required
def prompt_versions(request, template_id: int):
    if request.method == "POST":
        template = template_to_edit(request.user, template_id)
    else:
        template = template_to_view(request.user, template_id)
    form = VersionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            version = services.create_version(template, actor=request.user, message=form.cleaned_data["message"])
        except services.PromptInvalid as exc:
            form.add_error("message" if exc.param == "message" else None, as_sentence(exc))
        else:
            messages.success(request, f"Froze the draft as version {version.number}.")
            return redirect("console:prompt-versions", template.pk)
    versions = list(selectors.versions_of(template).select_related("author"))
    for version in versions:
        version.diff_lines = _diff_lines(version.diff)
        version.text = "\n".join(services.frozen_text(services.frozen_of(version)))
    return _page(request, "versions", template, {"form": form, "versions": versions}, tab="versions")


# --- environments: publish, split, roll back -----------------------------------------------------------------


def _split_label(split: dict) -> str:
    if len(split) == 1:
        return f"v{next(iter(split))}"
    return " · ".join(f"v{version} {weight}%" for version, weight in split.items())


@login_required
def prompt_publishing(request, template_id: int):
    template = template_to_view(request.user, template_id)
    environments = []
    for name in services.environments_of(template.tenant):
        current = services.current_publication(template, name)
        history = list(selectors.publication_history(template, name)[:20])
        for row in history:
            row.label = _split_label(row.split)
        environments.append(
            {
                "name": name,
                "serving": _split_label(current.split) if current else "",
                "can_roll_back": current is not None and current.replaced_id is not None,
                "rolls_back_to": _split_label(current.replaced.split) if current and current.replaced else "",
                "history": history,
            }
        )
    context = {
        "environments": environments,
        "versions": list(selectors.versions_of(template).values_list("number", flat=True)),
        "environment_form": EnvironmentForm(),
        "may_add_environment": roles.is_tenant_admin(request.user, template.tenant),
    }
    return _page(request, "publishing", template, context, tab="publishing")


def _published(request, template: PromptTemplate, write) -> object:
    try:
        publication = write()
    except services.PromptInvalid as exc:
        messages.error(request, as_sentence(exc))
    else:
        messages.success(request, f"{publication.environment} now serves {_split_label(publication.split)}.")
    return redirect("console:prompt-publishing", template.pk)


@login_required
@require_POST
def prompt_publish(request, template_id: int):
    template = template_to_edit(request.user, template_id)
    environment, version = request.POST.get("environment", "")[:32], request.POST.get("version", "")[:10]
    return _published(
        request,
        template,
        lambda: services.publish(template, actor=request.user, environment=environment, version=version),
    )


@login_required
@require_POST
def prompt_split(request, template_id: int):
    template = template_to_edit(request.user, template_id)
    environment = request.POST.get("environment", "")[:32]
    first, second = request.POST.get("version", "")[:10], request.POST.get("other_version", "")[:10]
    share = request.POST.get("other_percent", "")[:3]
    if not share.isdigit():
        messages.error(request, "The second version's share is a whole percentage.")
        return redirect("console:prompt-publishing", template.pk)
    split = {first: 100 - int(share), second: int(share)}
    return _published(
        request,
        template,
        lambda: services.publish_split(template, actor=request.user, environment=environment, split=split),
    )


@login_required
@require_POST
def prompt_rollback(request, template_id: int):
    template = template_to_edit(request.user, template_id)
    environment = request.POST.get("environment", "")[:32]
    return _published(
        request, template, lambda: services.rollback(template, actor=request.user, environment=environment)
    )


@login_required
@require_POST
def environment_add(request, template_id: int):
    template = template_to_view(request.user, template_id)
    if not roles.is_tenant_admin(request.user, template.tenant):
        raise PermissionDenied("Only the organisation's admins add environments.")
    form = EnvironmentForm(request.POST)
    if form.is_valid():
        try:
            services.add_environment(template.tenant, actor=request.user, name=form.cleaned_data["name"])
        except services.PromptInvalid as exc:
            messages.error(request, as_sentence(exc))
        else:
            messages.success(request, f"Added the environment {form.cleaned_data['name'].strip().lower()}.")
    else:
        messages.error(request, "An environment needs a name of at most 32 characters.")
    return redirect("console:prompt-publishing", template.pk)


# --- test runs and their examples ----------------------------------------------------------------------------


def _aliases_to_test(user, template: PromptTemplate) -> list[str]:
    """The template's alias and those of the user's teams' active subscriptions (the pasted key decides)."""
    reachable = ModelAlias.objects.filter(
        Q(name=template.alias)
        | Q(
            products__subscriptions__team__in=roles.teams_of(user),
            products__subscriptions__status=Subscription.Status.ACTIVE,
        )
    )
    names = sorted(set(reachable.values_list("name", flat=True)))
    return sorted(names, key=lambda name: name != template.alias)


def _prices(aliases: list[str]) -> dict:
    """Per alias, its deployments' prices per million tokens (as text: the page only estimates with them)."""
    prices: dict[str, dict] = {alias: {"deployments": {}, "first": None} for alias in aliases}
    routes = (
        AliasDeployment.objects.filter(alias__name__in=aliases)
        .select_related("alias", "deployment")
        .order_by("priority", "id")
    )
    for route in routes:
        entry = prices[route.alias.name]
        deployment = route.deployment
        entry["first"] = entry["first"] or deployment.name
        entry["deployments"][deployment.name] = {
            "input": str(deployment.input_per_1m),
            "output": str(deployment.output_per_1m),
            "cached": str(deployment.cached_input_per_1m) if deployment.cached_input_per_1m is not None else None,
        }
    return prices


@login_required
def prompt_test(request, template_id: int):
    template = template_to_view(request.user, template_id)
    aliases = _aliases_to_test(request.user, template)
    kept = examples.examples_of(template)
    for example in kept:
        example.cost = usd(example.cost_usd, max_places=10) if example.cost_usd is not None else ""
        example.variables_json = json.dumps(example.variables, ensure_ascii=False, separators=(",", ":"))
    context = {
        "versions": list(selectors.versions_of(template)),
        "variable_rows": [{"name": name, **spec} for name, spec in template.variables.items()],
        "aliases": aliases,
        "prices": _prices(aliases),
        "examples": kept,
    }
    return _page(request, "test", template, context, tab="test")


def _json_body(request) -> dict | None:
    if len(request.body) > MAX_JSON_BODY_BYTES:
        return None
    try:
        body = json.loads(request.body)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _error(message: str, param: str | None = None, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": {"message": message[:500], "param": param}}, status=status)


def _source(template: PromptTemplate, version) -> PromptTemplate | PromptVersion | None:
    if version in (None, "", "draft"):
        return template
    if isinstance(version, str) and version.isdigit() and len(version) < 10:
        version = int(version)
    if isinstance(version, bool) or not isinstance(version, int):
        return None
    return template.versions.filter(number=version).first()


@login_required
@require_POST
def prompt_render(request, template_id: int):
    """The messages a test run sends: the draft or a version, rendered with the typed values, server-side."""
    template = template_to_view(request.user, template_id)
    body = _json_body(request)
    if body is None:
        return _error("the body is a JSON object: {version, values}")
    source = _source(template, body.get("version"))
    if source is None:
        return _error(f"{template.slug} has no such version", "version")
    texts = body.get("values") or {}
    if not isinstance(texts, dict) or len(texts) > rendering.MAX_VARIABLES:
        return _error("values is an object of variable name -> typed text", "variables")
    if not all(isinstance(text, str) and len(text) <= rendering.MAX_VALUE_CHARS for text in texts.values()):
        return _error("each value is text", "variables")
    values, errors = typed_values(source.variables, {str(name)[:64]: text for name, text in texts.items()})
    if errors:
        name, error = next(iter(errors.items()))
        return _error(f"{name}: {error}", f"variables.{name}")
    try:
        rendered = rendering.render(source.messages, rendering.specs_from_dict(source.variables), values)
    except rendering.PromptError as exc:
        return _error(exc.message, exc.param)
    return JsonResponse(
        {
            "version": getattr(source, "number", None),
            "alias": source.alias,
            "messages": rendered,
            "parameters": source.parameters,
            "variables": values,
        }
    )


@login_required
@require_POST
def prompt_keep_example(request, template_id: int):
    template = template_to_view(request.user, template_id)
    if not selectors.can_edit(request.user, template):
        return _error("only the team's owners and the organisation's admins keep examples", status=403)
    body = _json_body(request)
    if body is None:
        return _error("the body is a JSON object")
    source = _source(template, body.get("version"))
    if not isinstance(source, PromptVersion):
        return _error("keep runs of a version: freeze the draft first", "version")
    try:
        example = examples.keep_example(
            source,
            actor=request.user,
            alias=body.get("alias"),
            variables=body.get("variables"),
            output=body.get("output"),
            usage=body.get("usage"),
            deployment=body.get("deployment"),
            latency_ms=body.get("latency_ms"),
        )
    except services.PromptInvalid as exc:
        return _error(exc.message, exc.param)
    cost = usd(example.cost_usd, max_places=10) if example.cost_usd is not None else ""
    return JsonResponse(
        {
            "id": example.pk,
            "version": source.number,
            "alias": example.alias,
            "cost": cost,
            "url": reverse("console:prompt-test", args=[template.pk]),
        },
        status=201,
    )
