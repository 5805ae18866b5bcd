"""JSON answers for what happens under /api/v1/ outside a DRF view: a path that matches no endpoint, and
Django's own 400/403/404/500 handlers (config/urls.py). Elsewhere (the console, the admin) Django's pages stay.
CSRF failures of session calls are DRF's, rendered by portal/api/exceptions.py: every DRF view is exempt
from Django's CSRF middleware.

A script calling the REST API parses every answer as JSON; an HTML error page breaks it and can leak details.
"""

from django.http import HttpRequest, JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt

API_PREFIX = "/api/"


@csrf_exempt  # an unknown path is 404 for every method; CSRF would turn a POST into an HTML 403
def unknown_endpoint(request: HttpRequest, path: str = "") -> JsonResponse:
    return _error(404, "no such endpoint (see /api/v1/docs/)", "not_found")


def bad_request(request: HttpRequest, exception=None):
    if _is_api(request):
        return _error(400, "bad request", "bad_request")
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception=None):
    if _is_api(request):
        return _error(403, "you do not have permission to perform this action", "permission_denied")
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception=None):
    if _is_api(request):
        return _error(404, "not found", "not_found")
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest):
    if _is_api(request):
        return _error(500, "internal error: it has been logged", "server_error")
    return defaults.server_error(request)


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def _error(status: int, detail: str, code: str) -> JsonResponse:
    return JsonResponse({"detail": detail, "code": code}, status=status)
