"""Every write of the portal. Views, the REST API, commands and tasks call these, never the models directly."""

from portal.services.keys import IssuedKey, issue_api_key, revoke_api_key, rotate_api_key
from portal.services.limits import set_rate_limits
from portal.services.logging_policy import set_team_logging_policy
from portal.services.residency import set_team_residency
from portal.services.subscriptions import (
    approve_subscription,
    reject_subscription,
    request_subscription,
    resume_subscription,
    suspend_subscription,
)
from portal.services.teams import accept_invitation, create_team, create_tenant, ensure_team, invite_member

__all__ = [
    "IssuedKey",
    "accept_invitation",
    "approve_subscription",
    "create_team",
    "create_tenant",
    "ensure_team",
    "invite_member",
    "issue_api_key",
    "reject_subscription",
    "request_subscription",
    "resume_subscription",
    "revoke_api_key",
    "rotate_api_key",
    "set_rate_limits",
    "set_team_logging_policy",
    "set_team_residency",
    "suspend_subscription",
]
