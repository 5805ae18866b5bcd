"""/api/v1/docs/: the OpenAPI schema as one plain HTML page, rendered on the server.

drf-spectacular's Swagger UI and Redoc views load their JavaScript from a CDN, which an offline or
air-gapped installation cannot reach; this page needs no script, no stylesheet from elsewhere and no extra
package. Machines read /api/v1/schema/ (YAML, or JSON with ?format=json).
"""

from django.http import HttpResponse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.views import APIView

_METHODS = ("get", "post", "put", "patch", "delete")
_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; color: #1b1f24; }
h2 { border-bottom: 1px solid #d0d7de; margin-top: 2.5rem; }
.operation { border: 1px solid #d0d7de; border-radius: 6px; margin: 1rem 0; padding: 0.5rem 1rem; }
.method { font-weight: 700; text-transform: uppercase; margin-right: 0.5rem; }
code, .path { font-family: ui-monospace, monospace; }
table { border-collapse: collapse; } td, th { padding: 0.15rem 0.75rem 0.15rem 0; text-align: left; }
.note { color: #57606a; }
"""


@extend_schema(exclude=True)
class DocsView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request: Request) -> HttpResponse:
        schema = SchemaGenerator().get_schema(request=None, public=True)
        return HttpResponse(_page(schema), content_type="text/html; charset=utf-8")


def _page(schema: dict) -> str:
    info, components = schema["info"], schema.get("components", {}).get("schemas", {})
    sections: dict[str, list[str]] = {}
    for path, operations in schema["paths"].items():
        for method in _METHODS:
            if method in operations:
                operation = operations[method]
                tag = (operation.get("tags") or ["api"])[0]
                sections.setdefault(tag, []).append(_operation(method, path, operation, components))
    body = format_html_join(
        "", "<h2 id='{}'>{}</h2>{}", ((tag, tag, _join(html)) for tag, html in sorted(sections.items()))
    )
    return format_html(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title><style>{style}</style>"
        "</head><body><h1>{title} <small class='note'>v{version}</small></h1><p>{description}</p>"
        "<p>Authenticate with <code>Authorization: Token &lt;token&gt;</code> (from <code>POST /api/v1/auth/token"
        "</code>) or the console's session with its CSRF token. Machine-readable schema: "
        "<a href='/api/v1/schema/'>YAML</a>, <a href='/api/v1/schema/?format=json'>JSON</a>.</p>"
        "<nav>{toc}</nav>{body}</body></html>",
        title=info.get("title", "API"),
        version=info.get("version", ""),
        description=info.get("description", ""),
        style=mark_safe(_STYLE),  # noqa: S308 -- our own constant
        toc=format_html_join(" · ", "<a href='#{}'>{}</a>", ((tag, tag) for tag in sorted(sections))),
        body=body,
    )


def _operation(method: str, path: str, operation: dict, components: dict) -> str:
    parameters = format_html_join(
        "",
        "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
        (
            (p["name"], p["in"], p.get("schema", {}).get("type", ""))
            for p in operation.get("parameters", [])
            if p["in"] in {"path", "query"}
        ),
    )
    request_body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    responses = format_html_join(
        ", ",
        "<code>{}</code> {}",
        ((code, _schema_name(answer)) for code, answer in operation.get("responses", {}).items()),
    )
    return format_html(
        "<div class='operation'><p><span class='method'>{}</span><span class='path'>{}</span></p>"
        "<p class='note'>{}</p>{}{}<p>Responses: {}</p></div>",
        method,
        path,
        operation.get("description", ""),
        format_html("<table><tr><th>parameter</th><th>in</th><th>type</th></tr>{}</table>", parameters)
        if parameters
        else "",
        _fields(request_body.get("schema"), components) if request_body else "",
        responses,
    )


def _schema_name(answer: dict) -> str:
    schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
    ref = schema.get("$ref") or schema.get("items", {}).get("$ref", "")
    return ref.rsplit("/", 1)[-1]


def _fields(schema: dict | None, components: dict) -> str:
    """The body's writable fields, from the component it refers to."""
    name = (schema or {}).get("$ref", "").rsplit("/", 1)[-1]
    component = components.get(name, {})
    required = set(component.get("required", []))
    rows = format_html_join(
        "",
        "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
        (
            (field, spec.get("type", spec.get("$ref", "").rsplit("/", 1)[-1]), "required" if field in required else "")
            for field, spec in component.get("properties", {}).items()
            if not spec.get("readOnly")
        ),
    )
    return format_html("<p>Body <code>{}</code>:</p><table>{}</table>", name, rows) if rows else ""


def _join(pieces: list[str]) -> str:
    return format_html_join("", "{}", ((piece,) for piece in pieces))
