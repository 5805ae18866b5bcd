from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q

from portal import roles, selectors
from portal.context_processors import ConsoleNav
from portal.models import Notification, Subscription
from portal.views.rendering import render_page


@login_required
def home(request):
    user = request.user
    teams = selectors.visible_teams(user=user).annotate(
        active_subscriptions=Count(
            "subscriptions", filter=Q(subscriptions__status=Subscription.Status.ACTIVE), distinct=True
        ),
        active_keys=Count("api_keys", filter=Q(api_keys__is_revoked=False), distinct=True),
        member_count=Count("memberships", distinct=True),
    )
    nav = ConsoleNav(user)
    context = {
        "nav": nav,
        "teams": teams,
        "has_organisation": roles.tenants_of(user).exists(),
        "notifications": Notification.objects.filter(user=user)[:5],
    }
    return render_page(request, "console/home.html", context, section="home")
