from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path
from django.views.generic import RedirectView

_FAVICON = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" '
    b'fill="#1f4fd1"/><path d="M8 10h16v3h-6.5v12h-3V13H8z" fill="#fff"/></svg>'
)


def favicon(request):
    # Browsers ask for /favicon.ico on every page; answer instead of logging a 404 in the console.
    return HttpResponse(_FAVICON, content_type="image/svg+xml", headers={"cache-control": "max-age=86400"})


urlpatterns = [
    path("", RedirectView.as_view(url="/console/", permanent=False)),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/v1/", include("portal.api.urls")),
    path("console/", include("portal.urls")),
    path("console/", include("billing.urls")),  # dashboards and the request log
    path("favicon.ico", favicon),
]

# JSON under /api/, Django's pages elsewhere (portal/api/fallbacks.py).
handler400 = "portal.api.fallbacks.bad_request"
handler403 = "portal.api.fallbacks.permission_denied"
handler404 = "portal.api.fallbacks.page_not_found"
handler500 = "portal.api.fallbacks.server_error"
