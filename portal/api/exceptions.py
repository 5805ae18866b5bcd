"""The one exception handler of /api/v1 (REST_FRAMEWORK["EXCEPTION_HANDLER"] = "portal.api.exceptions.handle").

- Domain errors (portal.errors.PortalError) answer their own status with `{"detail": ..., "code": ...}`.
- A refused catalogue entry (routing.catalogue.CatalogueError) answers 400 with the problems per field,
  like a serializer's validation errors: `{"base_url": ["base_url resolves to ..."]}`.
- DRF's own errors keep DRF's shape; those with a single message also get their `code`.
"""

import re

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from portal.errors import PortalError
from routing.catalogue import CatalogueError

# "aliases[0].deployments[1]: unknown deployment 'x'" -> field "deployments", message "unknown deployment 'x'"
_CATALOGUE_PROBLEM = re.compile(r"^[a-z]+\[\d+\](?:\.(?P<field>[a-z_0-9]+)[^:]*)?: (?P<message>.*)$", re.S)


def handle(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, PortalError):
        return Response({"detail": exc.message, "code": exc.code}, status=exc.status)
    if isinstance(exc, CatalogueError):
        return Response(_catalogue_problems(exc.errors), status=400)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()  # the same answer for "does not exist" and "not yours"
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.APIException) and isinstance(exc.detail, str):
        response.data = {"detail": str(exc.detail), "code": exc.detail.code}
    return response


def _catalogue_problems(errors: list[str]) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    for error in errors:
        match = _CATALOGUE_PROBLEM.match(error)
        field = (match and match["field"]) or "non_field_errors"
        problems.setdefault(field, []).append(match["message"] if match else error)
    return problems
