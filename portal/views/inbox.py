from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from portal.models import Notification
from portal.services import console as console_services
from portal.views.rendering import paginate, render_page


@login_required
def inbox(request):
    notifications = Notification.objects.filter(user=request.user)
    context = {
        "notifications": paginate(request, notifications),
        "unread_count": notifications.filter(is_read=False).count(),
    }
    return render_page(request, "console/inbox.html", context, section="inbox")


@login_required
@require_POST
def mark_read(request, notification_id: int):
    notification = get_object_or_404(Notification, pk=notification_id, user=request.user)
    console_services.mark_notification_read(notification=notification)
    # "Open" marks read and follows the notification's own link, which must stay on this site.
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect(reverse("console:inbox"))


@login_required
@require_POST
def mark_all_read(request):
    console_services.mark_all_notifications_read(user=request.user)
    return redirect(reverse("console:inbox"))
