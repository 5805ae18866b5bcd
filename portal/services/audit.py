from django.conf import settings
from django.core.mail import send_mail

from portal.models import AuditLogEntry, Notification, Tenant


def record(
    *,
    tenant: Tenant | None,
    actor,
    action: str,
    target,
    reason: str = "",
    details: dict | None = None,
    actor_label: str = "",
) -> AuditLogEntry:
    return AuditLogEntry.objects.create(
        tenant=tenant,
        actor=actor if actor is not None and getattr(actor, "is_authenticated", False) else None,
        actor_label=actor_label or (getattr(actor, "email", "") or str(actor or "")),
        action=action,
        target_type=type(target).__name__.lower(),
        target_id=str(target.pk),
        reason=reason,
        details=details or {},
    )


def notify(*, users, subject: str, body: str, link: str = "") -> None:
    """In-app inbox plus email (the console backend on the embedded default)."""
    users = [u for u in users if u is not None]
    Notification.objects.bulk_create([Notification(user=u, subject=subject, body=body, link=link) for u in users])
    recipients = sorted({u.email for u in users if u.email})
    if recipients:
        # Emails are read outside the console, so their links must be absolute.
        url = f"{settings.TOLLWAY_PUBLIC_URL.rstrip('/')}{link}" if link.startswith("/") else link
        send_mail(subject, f"{body}\n\n{url}".strip(), settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=True)
