from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Case, IntegerField, Value, When
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing import selectors as billing_selectors
from portal import roles, selectors, services
from portal.errors import PortalError
from portal.forms import (
    GRACE_CHOICES,
    CreateTeamForm,
    InviteMemberForm,
    LoggingPolicyForm,
    ResidencyForm,
    RotateKeyForm,
)
from portal.models import Invitation, Membership, Subscription
from portal.services import console as console_services
from portal.services import residency
from portal.views import access
from portal.views.rendering import as_sentence, paginate, render_page


@login_required
def create_team(request):
    user = request.user
    organisations = selectors.administered_tenants(user=user).order_by("name")
    if not organisations.exists() and roles.tenants_of(user).exists():
        # Members of an organisation ask its admins; founding a second organisation is not the way round.
        raise PermissionDenied("Only your organisation's admins can create teams. Ask one of them.")
    form = CreateTeamForm(request.POST or None, organisations=organisations)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            if form.creates_organisation:
                team = console_services.create_organisation_with_team(
                    organisation_name=data["organisation_name"], team_name=data["team_name"], user=user
                )
            else:
                team = services.create_team(tenant=data["organisation"], name=data["team_name"], owner=user)
        except PortalError as exc:
            form.add_error(None, as_sentence(exc))
        else:
            messages.success(request, f"Team {team.name} created. Next: request access to an API product.")
            return redirect("console:team", team_id=team.pk)
    return render_page(request, "console/team_new.html", {"form": form}, section="teams")


def _keys_of(team):
    # Live keys first, newest first; revoked ones stay listed for the record.
    return (
        team.api_keys.annotate(
            revoked_last=Case(When(is_revoked=False, then=Value(0)), default=1, output_field=IntegerField())
        )
        .select_related("created_by", "rotated_from")
        .order_by("revoked_last", "-created_at")
    )


def _key_state(key, now) -> str:
    if key.is_revoked:
        return "revoked"
    if key.expires_at and key.expires_at <= now:
        return "expired"
    if key.expires_at and key.expires_at - now < timedelta(days=7):
        return "expiring"
    return "active"


def _team_page(request, team, *, invite_form=None, residency_form=None):
    subscriptions = team.subscriptions.select_related("product", "requested_by").annotate(
        rank=Case(
            When(status=Subscription.Status.ACTIVE, then=Value(0)),
            When(status=Subscription.Status.PENDING, then=Value(1)),
            default=2,
            output_field=IntegerField(),
        )
    )
    keys = paginate(request, _keys_of(team), param="keys")
    now = timezone.now()
    month_start, month_end = billing_selectors.month_bounds(now)
    spend = billing_selectors.key_spend(team=team, start=month_start, end=month_end)
    for key in keys:
        key.state = _key_state(key, now)
        key.spent_usd, key.spent_tokens = spend.get(key.pk, (None, 0))
    context = {
        "team": team,
        "can_manage": roles.can_manage_team(request.user, team),
        "keys": keys,
        "month_start": month_start,
        "subscriptions": subscriptions.order_by("rank", "-created_at"),
        "members": team.memberships.select_related("user").order_by("role", "user__email"),
        "invitations": team.invitations.filter(accepted_at__isnull=True).order_by("-created_at"),
        "invite_form": invite_form or InviteMemberForm(),
        "residency_form": residency_form
        or ResidencyForm(initial={"allowed_regions": team.allowed_regions, "required_tags": team.required_tags}),
        "residency_form_name": ResidencyForm.NAME,
        "logging_form": LoggingPolicyForm(initial={"stores_bodies": team.stores_bodies}),
        "logging_form_name": LoggingPolicyForm.NAME,
        "grace_choices": GRACE_CHOICES,
        "default_grace_s": RotateKeyForm.base_fields["grace_s"].initial,
    }
    return render_page(request, "console/team_detail.html", context, section="teams")


@login_required
def team_detail(request, team_id: int):
    if request.method == "POST":
        # The page's own forms post here, named by `form`.
        changes = {ResidencyForm.NAME: _change_residency, LoggingPolicyForm.NAME: _change_logging_policy}
        change = changes.get(request.POST.get("form"))
        if change is None:
            return HttpResponseBadRequest("Unknown form.")
        return change(request, access.team_to_manage(request.user, team_id))
    return _team_page(request, access.team_to_view(request.user, team_id))


def _change_logging_policy(request, team):
    # A checkbox: always valid (unticked posts nothing, which is False).
    form = LoggingPolicyForm(request.POST)
    form.is_valid()
    try:
        team = services.set_team_logging_policy(
            team=team, changed_by=request.user, stores_bodies=form.cleaned_data["stores_bodies"]
        )
    except PortalError as exc:
        messages.error(request, as_sentence(exc))
    else:
        saved = "Bodies are stored" if team.stores_bodies else "No bodies are stored"
        messages.success(request, f"Logging policy saved: {saved}. The gateways apply it within seconds.")
    return redirect(reverse("console:team", args=[team.pk]) + "#logging")


def _change_residency(request, team):
    form = ResidencyForm(request.POST)
    if form.is_valid():
        try:
            team = services.set_team_residency(team=team, changed_by=request.user, **form.cleaned_data)
        except residency.InvalidResidency as exc:
            form.add_error(exc.field, exc.sentence())
        except PortalError as exc:
            form.add_error(None, as_sentence(exc))
        else:
            messages.success(request, "Data residency saved. The gateways apply it within seconds.")
            beyond = residency.keys_beyond_team(team=team)
            if beyond:
                named = ", ".join(f"{key.prefix}…" for key in beyond[:3])
                more = f" and {len(beyond) - 3} more" if len(beyond) > 3 else ""
                messages.warning(
                    request,
                    f"Keys {named}{more} list regions outside the team's: they now reach only the regions "
                    "in both lists, or none.",
                )
            return redirect(reverse("console:team", args=[team.pk]) + "#residency")
    return _team_page(request, team, residency_form=form)


@login_required
@require_POST
def invite_member(request, team_id: int):
    team = access.team_to_manage(request.user, team_id)
    form = InviteMemberForm(request.POST)
    if form.is_valid():
        try:
            invitation = console_services.invite_member_by_email(
                team=team,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                invited_by=request.user,
                accept_url_for=lambda token: request.build_absolute_uri(reverse("console:invitation", args=[token])),
            )
        except PortalError as exc:
            form.add_error("email", as_sentence(exc))
        else:
            messages.success(request, f"Invitation sent to {invitation.email}.")
            return redirect(reverse("console:team", args=[team.pk]) + "#members")
    # Re-draw the team page with the errors beside the invitation's fields.
    return _team_page(request, team, invite_form=form)


@login_required
def accept_invitation(request, token: str):
    invitation = get_object_or_404(Invitation.objects.select_related("team__tenant", "invited_by"), token=token)
    error = ""
    if invitation.accepted_at is not None:
        error = "This invitation has been used already."
    elif request.user.email.lower() != invitation.email:
        error = f"This invitation is for {invitation.email}. Sign in with that address to accept it."
    if request.method == "POST" and not error:
        try:
            services.accept_invitation(invitation=invitation, user=request.user)
        except PortalError as exc:
            error = as_sentence(exc)
        else:
            messages.success(request, f"Welcome to {invitation.team.name}.")
            return redirect("console:team", team_id=invitation.team_id)
    role = Membership.Role(invitation.role).label
    context = {"invitation": invitation, "role": role, "error": error}
    return render_page(request, "console/invitation.html", context, section="teams")
