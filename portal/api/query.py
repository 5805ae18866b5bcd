"""What /api/v1 reads from a URL besides its body: ids in the path, exact-match filters and page numbers, each
checked before it reaches a query.

Every id is a BigAutoField: a number past 2^63 − 1 makes SQLite raise OverflowError and PostgreSQL a DataError,
a 500 either way. So an id in the path that no row can have answers 404 (like any id that names nothing), and
an id in the query string that no row can have answers 400 (like `?team=abc`).
"""

from dataclasses import dataclass

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, pagination

ID_MIN, ID_MAX = 1, 2**63 - 1  # BigAutoField
PAGE_MAX = 2**31 - 1
ID_SCHEMA = {"type": "integer", "format": "int64", "minimum": ID_MIN, "maximum": ID_MAX}


def is_id(text: str) -> bool:
    """`text` can be the primary key of a row: a whole number in 1..2^63 − 1, digits only."""
    return text.isascii() and text.isdigit() and ID_MIN <= int(text) <= ID_MAX


def require_path_ids(kwargs: dict) -> None:
    """An id in the path (`pk`, `team_id`) that no row can have names nothing: 404, before any query."""
    for name, value in kwargs.items():
        if (name == "pk" or name.endswith("_id")) and not is_id(str(value)):
            raise exceptions.NotFound()


@dataclass(frozen=True)
class Filter:
    """`?param=value` as `queryset.filter(lookup=value)`. `kind` is "id", "text" (up to `max_length`) or "choice"."""

    param: str
    lookup: str
    kind: str = "text"
    max_length: int = 200
    choices: tuple[str, ...] = ()

    def clean(self, value: str):
        if self.kind == "id":
            if not is_id(value):
                raise exceptions.ValidationError({self.param: [f"must be a whole number from {ID_MIN} to {ID_MAX}"]})
            return int(value)
        if self.kind == "choice" and value not in self.choices:
            raise exceptions.ValidationError({self.param: [f"must be one of: {', '.join(self.choices)}"]})
        if len(value) > self.max_length:
            raise exceptions.ValidationError({self.param: [f"must be at most {self.max_length} characters"]})
        if "\x00" in value:  # PostgreSQL refuses NUL in text: a DataError, so a 500
            raise exceptions.ValidationError({self.param: ["must not contain NUL characters"]})
        return value

    def parameter(self) -> OpenApiParameter:
        if self.kind == "id":
            return OpenApiParameter(self.param, {**ID_SCHEMA})
        if self.kind == "choice":
            return OpenApiParameter(self.param, OpenApiTypes.STR, enum=list(self.choices))
        return OpenApiParameter(
            self.param, {"type": "string", "maxLength": self.max_length, "pattern": "^[^\\u0000]*$"}
        )


def filtered(queryset, query_params, filters: tuple[Filter, ...]):
    """The queryset narrowed by each filter present in the query string; an empty value filters nothing."""
    for spec in filters:
        value = query_params.get(spec.param)
        if value:
            queryset = queryset.filter(**{spec.lookup: spec.clean(value)})
    return queryset


class PageNumbers(pagination.PageNumberPagination):
    """DRF's pages, with the page number checked like every other number: `?page=` is 1, 2, … (`0`, `-1`, `last`
    or `abc` answer 400); an empty `?page=` is the first page, as any empty parameter is no parameter; a page
    past the last answers 404."""

    def get_page_number(self, request, paginator) -> int:
        text = request.query_params.get(self.page_query_param)
        if not text:
            return 1
        if not (text.isascii() and text.isdigit() and 1 <= int(text) <= PAGE_MAX):
            raise exceptions.ValidationError({self.page_query_param: [f"must be a whole number from 1 to {PAGE_MAX}"]})
        return int(text)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["schema"].update(minimum=1, maximum=PAGE_MAX)
        return parameters
