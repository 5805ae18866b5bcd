"""How /api/v1 describes itself in OpenAPI: drf-spectacular's AutoSchema plus the error answers every operation
really gives, with the JSON bodies they carry (portal/api/exceptions.py renders them).

drf-spectacular documents only the success status; a client (or schemathesis) then meets 400, 401, 403, 404,
409, 415 and 429 answers the schema never mentions. Which of them an operation can give follows from its shape:
a body can be invalid (400) or of the wrong type (415), a path id can name nothing (404), a list can be asked
for a page past its end (404), a token is missing (401) or a role is (403).
"""

from django.core import validators
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from portal.api.inputs import DecimalString
from portal.api.query import ID_SCHEMA

# {"detail": "...", "code": "...", "param"?: "..."}: every error except a 400 that names fields.
ERROR = {
    "type": "object",
    "properties": {
        "detail": {"type": "string", "description": "What went wrong, for a person."},
        "code": {"type": "string", "description": "What went wrong, for a program: `not_found`, `invalid`…"},
        "param": {"type": "string", "description": "The field it is about, as a path: `messages[0].content`."},
    },
    "required": ["detail"],
}
# {"name": ["This field may not be blank."], "thresholds": {"0": ["…"]}}: a 400 about fields of the request.
FIELD_ERRORS = {
    "type": "object",
    "description": "The request's problems by field (`non_field_errors` for the request as a whole).",
    "additionalProperties": {"anyOf": [{"type": "array"}, {"type": "object"}]},
    "minProperties": 1,
}
DESCRIPTIONS = {
    "400": "The request is invalid: its body, query or a page number.",
    "401": "No valid `Authorization: Token …` (or session) was sent.",
    "403": "The caller may see this but not do it (or the session's CSRF token is missing).",
    "404": "Nothing with this id is visible to the caller (or the page is past the last one).",
    "409": "The object's state does not allow this (e.g. approving a rejected subscription).",
    "413": "The body is larger than the API reads (DATA_UPLOAD_MAX_MEMORY_SIZE).",
    "415": "The body is not JSON (or form data).",
    "429": "Too many attempts; retry later.",
}
WRITES = {"POST", "PUT", "PATCH"}
# Validators drf-spectacular turns into a pattern or format of their own (a slug's, an email's, a URL's).
SHAPE_VALIDATORS = (validators.RegexValidator, validators.EmailValidator, validators.URLValidator)


# DRF's CharField refuses NUL (ProhibitNullCharactersValidator) and, unless blank is allowed, a value that is
# empty once trimmed: the schema says so, or a fuzzer's valid "  " or "a\x00" is refused without warning.
# (A field that allows blank gets drf-spectacular's `oneOf: [this, {maxLength: 0}]`: this one must not match "".)
NO_NUL = "^[^\\u0000]+$"
NOT_BLANK = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"


class ApiSchema(AutoSchema):
    """A view lists in `extra_error_codes` what it can answer beyond what its shape implies (e.g. "409" when a
    service refuses a move the object's state does not allow). A serializer with `refuses_unknown_fields = True`
    is documented with `additionalProperties: false`."""

    def _get_response_bodies(self, direction="response") -> dict:
        responses = super()._get_response_bodies(direction)
        for code in sorted(self._error_codes()):
            if code not in responses:
                responses[code] = {
                    "description": DESCRIPTIONS[code],
                    "content": {"application/json": {"schema": self._error_schema(code)}},
                }
        return responses

    def get_override_parameters(self) -> list:
        filters = [spec.parameter() for spec in getattr(self.view, "filters", ())] if self._is_list_view() else []
        return [*super().get_override_parameters(), *filters]

    def _get_parameters(self) -> list[dict]:
        parameters = super()._get_parameters()
        for parameter in parameters:
            # portal/api/query.py: `?team=` is the same as no `team` at all, for every optional parameter.
            if parameter["in"] == "query" and not parameter.get("required"):
                parameter["allowEmptyValue"] = True
        return parameters

    def _map_basic_serializer(self, serializer, direction) -> dict:
        schema = super()._map_basic_serializer(serializer, direction)
        if getattr(serializer, "refuses_unknown_fields", False):
            schema["additionalProperties"] = False
        return schema

    def _map_serializer_field(self, field, direction, bypass_extensions=False) -> dict:
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if isinstance(field, DecimalString):
            schema["pattern"] = f"^(?:{field.pattern.pattern})$"  # what the field checks, not DRF's guess
        return schema

    def _insert_field_validators(self, field, schema) -> None:
        if (
            isinstance(field, serializers.CharField)
            and not field.read_only
            and schema.get("type") == "string"
            and "format" not in schema
            and not any(isinstance(v, SHAPE_VALIDATORS) for v in field.validators)
        ):
            if not field.allow_blank:
                schema["minLength"] = max(schema.get("minLength", 0), 1)
            schema["pattern"] = NOT_BLANK if not field.allow_blank and field.trim_whitespace else NO_NUL
        super()._insert_field_validators(field, schema)
        if "oneOf" in schema and "default" in schema["oneOf"][0]:
            schema["default"] = schema["oneOf"][0].pop("default")  # "" is the other branch's, not this one's

    def _resolve_path_parameters(self, variables) -> list[dict]:
        parameters = super()._resolve_path_parameters(variables)
        for parameter in parameters:
            # Our ids are `(?P<pk>[0-9]+)` in the URL (drf-spectacular reads "a string of digits"): say what they
            # are, ids in 1..2^63 - 1; beyond that, portal/api/query.py answers 404 before any query.
            if parameter["schema"].get("type") == "integer" or parameter["schema"].get("pattern") == "^[0-9]+$":
                parameter["schema"] = {**ID_SCHEMA}
        return parameters

    def _error_codes(self) -> list[str]:
        codes = []
        has_query = any(p["in"] == "query" for p in self._get_parameters())
        if self.method in WRITES or has_query:
            codes.append("400")
        if not self._allows_anyone():
            codes += ["401", "403"]
        if "{" in self.path or self._is_list_view():
            codes.append("404")
        codes += [code for code in getattr(self.view, "extra_error_codes", ()) if code not in codes]
        if self.method in WRITES:
            codes += ["413", "415"]
        if getattr(self.view, "throttle_classes", None):
            codes.append("429")
        return codes

    def _allows_anyone(self) -> bool:
        return all(isinstance(permission, AllowAny) for permission in self.view.get_permissions())

    def _error_schema(self, code: str) -> dict:
        error = self._component("Error", ERROR)
        if code != "400":
            return error
        return {"anyOf": [error, self._component("FieldErrors", FIELD_ERRORS)]}

    def _component(self, name: str, schema: dict) -> dict:
        component = ResolvedComponent(name=name, type=ResolvedComponent.SCHEMA, schema=schema, object=name)
        self.registry.register_on_missing(component)
        return component.ref
