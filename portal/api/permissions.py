"""The console's rules (portal/roles.py) as DRF permissions.

Visibility comes first and is the selectors' job: what a user cannot see answers 404. These checks come
second, for rows the user can see but may not act on, and answer 403.
"""

from rest_framework import exceptions, permissions

from portal import roles, selectors


def require(is_allowed: bool, message: str) -> None:
    if not is_allowed:
        raise exceptions.PermissionDenied(message)


class IsPlatformAdminOrReadOnly(permissions.IsAuthenticated):
    """The model catalogue: every signed-in user reads it, only platform admins change it."""

    message = "only platform admins can change the model catalogue"

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        return request.method in permissions.SAFE_METHODS or roles.is_platform_admin(request.user)


class CanReadAuditLog(permissions.IsAuthenticated):
    """Tenant admins read their tenants' entries and platform admins everything; anyone else gets 403."""

    message = "only tenant and platform admins can read the audit log"

    def has_permission(self, request, view) -> bool:
        return super().has_permission(request, view) and selectors.can_read_audit_log(user=request.user)
