"""Writes the console needs that the domain services did not have: founding an organisation with its first
team in one step, sending an invitation, and reading the inbox."""

from collections.abc import Callable

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from portal.errors import InvalidInput
from portal.models import Invitation, Membership, Notification, Team
from portal.services.teams import create_team, create_tenant, invite_member


@transaction.atomic
def create_organisation_with_team(*, organisation_name: str, team_name: str, user) -> Team:
    """The sign-up path: both or neither, so a failed team name leaves no empty organisation behind."""
    tenant = create_tenant(name=organisation_name, admin=user)
    return create_team(tenant=tenant, name=team_name, owner=user)


@transaction.atomic
def invite_member_by_email(
    *, team: Team, email: str, role: str, invited_by, accept_url_for: Callable[[str], str]
) -> Invitation:
    """Invite, then email the link; `accept_url_for(token)` is the absolute URL of the acceptance page."""
    email = email.strip().lower()
    if Membership.objects.filter(team=team, user__email__iexact=email).exists():
        raise InvalidInput("that person is already in the team")
    if Invitation.objects.filter(team=team, email=email, accepted_at__isnull=True).exists():
        raise InvalidInput("that address has an invitation waiting already")
    invitation = invite_member(team=team, email=email, role=role, invited_by=invited_by)
    link = accept_url_for(invitation.token)
    inviter = getattr(invited_by, "email", "") or "A colleague"
    # After the commit: a rolled-back invitation must not have been mailed.
    transaction.on_commit(
        lambda: send_mail(
            f"Join {team.name} on Tollway",
            f"{inviter} invited you to the team {team.name} ({team.tenant.name}) on Tollway.\n\n"
            f"Accept the invitation: {link}\n",
            settings.DEFAULT_FROM_EMAIL,
            [email],
            fail_silently=True,
        )
    )
    return invitation


def mark_notification_read(*, notification: Notification) -> Notification:
    if not notification.is_read:
        notification.is_read = True
        notification.save(update_fields=["is_read"])
    return notification


def mark_all_notifications_read(*, user) -> int:
    return Notification.objects.filter(user=user, is_read=False).update(is_read=True)
