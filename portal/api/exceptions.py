"""The one exception handler of /api/v1 (REST_FRAMEWORK["EXCEPTION_HANDLER"] = "portal.api.exceptions.handle").

- Domain errors (portal.errors.PortalError) answer their own status with `{"detail": ..., "code": ...}`, plus
  `param` when the error names the field it is about (`messages[0].content`, `variables.ticker`).
- A body over DATA_UPLOAD_MAX_MEMORY_SIZE answers 413 `{"detail", "code": "body_too_large"}` (Django raises
  it while DRF reads the body, before any parser or view could answer).
- A refused catalogue entry (routing.catalogue.CatalogueError) answers 400 with the problems per field,
  like a serializer's validation errors: `{"base_url": ["base_url resolves to ..."]}`.
- DRF's own errors keep DRF's shape; those with a single message also get their `code`, and a list of messages
  about the request as a whole becomes `{"non_field_errors": [...]}`, like a serializer's.
- Anything else is a bug: it is logged with its traceback and answers 500 `{"detail", "code": "server_error"}`,
  never Django's HTML page (DEBUG or not) nor a stack trace.
"""

import logging
import re

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler, set_rollback

from portal.errors import PortalError
from routing.catalogue import CatalogueError

# "aliases[0].deployments[1]: unknown deployment 'x'" -> field "deployments", message "unknown deployment 'x'"
log = logging.getLogger("tollway.api")

_CATALOGUE_PROBLEM = re.compile(r"^[a-z]+\[\d+\](?:\.(?P<field>[a-z_0-9]+)[^:]*)?: (?P<message>.*)$", re.S)


def handle(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, PortalError):
        body = {"detail": exc.message, "code": exc.code}
        if getattr(exc, "param", None):
            body["param"] = exc.param
        return Response(body, status=exc.status)
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response({"detail": f"the body is larger than {limit} bytes", "code": "body_too_large"}, status=413)
    if isinstance(exc, CatalogueError):
        return Response(_catalogue_problems(exc.errors), status=400)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()  # the same answer for "does not exist" and "not yours"
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        view = context.get("view")
        log.error("unhandled error in %s", type(view).__name__ if view else "an API view", exc_info=exc)
        set_rollback()
        return Response({"detail": "internal error: it has been logged", "code": "server_error"}, status=500)
    if isinstance(exc, exceptions.APIException) and isinstance(exc.detail, str):
        response.data = {"detail": str(exc.detail), "code": exc.detail.code}
    elif isinstance(response.data, list):
        response.data = {"non_field_errors": response.data}
    return response


def _catalogue_problems(errors: list[str]) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    for error in errors:
        match = _CATALOGUE_PROBLEM.match(error)
        field = (match and match["field"]) or "non_field_errors"
        problems.setdefault(field, []).append(match["message"] if match else error)
    return problems
