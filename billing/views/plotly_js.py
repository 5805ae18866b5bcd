"""plotly.js, served from the plotly package this build installed (requirements.txt pins it): no CDN, and the
charts' library always matches the plotly.py that built their figures."""

from functools import cache
from pathlib import Path

import plotly
from django.http import Http404, HttpResponse
from django.views.decorators.http import require_GET

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
VERSION = plotly.__version__


@cache
def _plotly_js() -> bytes:
    # Read once per process (4.8 MB): served whole, as the ASGI handler would otherwise warn about a sync stream.
    return PLOTLY_JS.read_bytes()


@require_GET
def plotly_js(request, version: str):
    # The version is in the URL, so the file can be cached for good and a plotly upgrade still reaches browsers.
    if version != VERSION or not PLOTLY_JS.exists():
        raise Http404("No such plotly.js.")
    response = HttpResponse(_plotly_js(), content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    return response
