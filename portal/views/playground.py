"""The playground page. The browser calls /v1/chat/completions itself with a key the user pastes (keys are
stored hashed, so the server has none to lend); the key stays in the page, or in the tab's sessionStorage
when the user just created it."""

from django.contrib.auth.decorators import login_required

from portal import roles
from portal.models import Subscription
from portal.views.rendering import render_page
from routing.models import ModelAlias


@login_required
def playground(request):
    reachable = ModelAlias.objects.filter(
        products__subscriptions__team__in=roles.teams_of(request.user),
        products__subscriptions__status=Subscription.Status.ACTIVE,
    )
    context = {"aliases": reachable.distinct().order_by("name").values_list("name", flat=True)}
    return render_page(request, "console/playground.html", context, section="playground")
