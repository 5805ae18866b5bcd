"""Domain errors of the portal. The REST API and the console turn them into 400/403/404/409 answers."""


class PortalError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidTransition(PortalError):
    """A subscription cannot move from its current status to the requested one."""

    status, code = 409, "invalid_transition"


class NotAllowed(PortalError):
    status, code = 403, "permission_denied"


class InvalidInput(PortalError):
    status, code = 400, "invalid"
