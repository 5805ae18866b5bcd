"""What the console's navigation bar needs on every page: unread notifications and, for admins, how many
subscriptions wait for a decision. Lazy, so a page that draws no navigation runs no query."""

from functools import cached_property

from portal import selectors
from portal.models import Notification, Subscription


class ConsoleNav:
    # Pages of other apps in the bar, as (label, URL name, section): every signed-in user may open them, and
    # each page shows only that user's scope. Dashboards and the request log live in billing/urls.py.
    more_links = (("Dashboards", "billing:finance", "dashboards"), ("Requests", "billing:requests", "requests"))

    def __init__(self, user) -> None:
        self.user = user

    @cached_property
    def can_approve(self) -> bool:
        return selectors.administered_tenants(user=self.user).exists()

    @cached_property
    def pending_approvals(self) -> int:
        if not self.can_approve:
            return 0
        return Subscription.objects.filter(
            team__tenant__in=selectors.administered_tenants(user=self.user), status=Subscription.Status.PENDING
        ).count()

    @cached_property
    def unread_notifications(self) -> int:
        return Notification.objects.filter(user=self.user, is_read=False).count()


def console_nav(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"nav": ConsoleNav(user)}
