"""Portal keys. A new secret is drawn once, in the answer to the POST that made it: it is never stored, not
even in the session, and the page is marked no-store so the browser does not keep it either."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from portal import services
from portal.errors import PortalError
from portal.forms import NewKeyForm, RevokeKeyForm, RotateKeyForm
from portal.models import APIKey
from portal.services.residency import InvalidResidency
from portal.views import access
from portal.views.rendering import as_sentence, render_page


def _team_keys_url(team_id: int) -> str:
    return reverse("console:team", args=[team_id]) + "#keys"


def _show_secret(request, issued: services.IssuedKey, *, rotated_from: APIKey | None = None):
    context = {"api_key": issued.api_key, "secret": issued.secret, "team": issued.api_key.team}
    context["rotated_from"] = rotated_from
    return render_page(request, "console/key_secret.html", context, section="teams")


@never_cache
@login_required
def new_key(request, team_id: int):
    team = access.team_to_manage(request.user, team_id)
    form = NewKeyForm(request.POST or None, team=team)
    if request.method == "POST" and form.is_valid():
        try:
            issued = services.issue_api_key(
                team=team,
                name=form.cleaned_data["name"],
                subscriptions=list(form.cleaned_data["subscriptions"]),
                expires_at=form.expires_at(),
                rpm_limit=form.cleaned_data.get("rpm_limit"),
                tpm_limit=form.cleaned_data.get("tpm_limit"),
                allowed_regions=form.cleaned_data["allowed_regions"],
                required_tags=form.cleaned_data["required_tags"],
                source=APIKey.Source.PORTAL,
                created_by=request.user,
            )
        except InvalidResidency as exc:
            # The team's regions changed between the form's check and this write.
            form.add_error(exc.field, exc.sentence())
        except PortalError as exc:
            form.add_error(None, as_sentence(exc))
        else:
            return _show_secret(request, issued)
    context = {"team": team, "form": form, "has_active_subscriptions": form.fields["subscriptions"].queryset.exists()}
    return render_page(request, "console/key_new.html", context, section="teams")


@login_required
@require_POST
def revoke_key(request, key_id: int):
    api_key = access.key_to_manage(request.user, key_id)
    form = RevokeKeyForm(request.POST)
    if api_key.is_revoked:
        messages.info(request, f"{api_key.prefix}… was revoked already.")
    elif form.is_valid():
        services.revoke_api_key(api_key=api_key, revoked_by=request.user, reason=form.cleaned_data["reason"])
        messages.success(request, f"{api_key.prefix}… revoked. Calls with it fail within seconds.")
    return redirect(_team_keys_url(api_key.team_id))


@never_cache
@login_required
@require_POST
def rotate_key(request, key_id: int):
    api_key = access.key_to_manage(request.user, key_id)
    form = RotateKeyForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Pick a grace period from the list.")
        return redirect(_team_keys_url(api_key.team_id))
    try:
        issued = services.rotate_api_key(api_key=api_key, rotated_by=request.user, grace_s=form.cleaned_data["grace_s"])
    except PortalError as exc:
        messages.error(request, as_sentence(exc))
        return redirect(_team_keys_url(api_key.team_id))
    api_key.refresh_from_db()
    return _show_secret(request, issued, rotated_from=api_key)
