"""Which model a usage row is shown under: its alias, or one "unknown model" entry for calls whose `model`
named nothing in the catalogue.

Since the /v1 path records `alias=""` for such calls, an empty alias is unknown. Records stored before that
carry whatever the client sent ("nope", "(none)", a 100,000-character name), so the record alone is not
trusted: a row is shown under its alias when that alias is in the catalogue now, or when the call was routed to
a deployment (so the alias existed then, even if it has since been deleted). Everything else, refused before
routing under a name the catalogue does not know, is one "unknown model" entry in tables, charts, CSV, filters
and the usage page. The same rule reads aggregates and raw records: both have `alias` and `deployment`.
"""

from django.db.models import Case, CharField, Exists, F, OuterRef, Q, Value, When

from routing.models import ModelAlias

UNKNOWN_MODEL = "unknown model"
# The filter's value for that entry: parentheses, which no alias a client could route to uses in practice.
UNKNOWN_MODEL_PARAM = "(unknown)"


def _in_catalogue(alias_field: str) -> Exists:
    return Exists(ModelAlias.objects.filter(name=OuterRef(alias_field)))


def is_known(*, alias_field: str = "alias", deployment_field: str = "deployment") -> Q:
    return ~Q(**{alias_field: ""}) & (Q(_in_catalogue(alias_field)) | ~Q(**{deployment_field: ""}))


def shown_model(*, alias_field: str = "alias", deployment_field: str = "deployment") -> Case:
    """The alias a row is shown under, or "" for the unknown-model entry (an annotation)."""
    return Case(
        When(is_known(alias_field=alias_field, deployment_field=deployment_field), then=F(alias_field)),
        default=Value(""),
        output_field=CharField(),
    )


def matching(alias: str, *, alias_field: str = "alias", deployment_field: str = "deployment") -> Q:
    """Rows shown under `alias` (UNKNOWN_MODEL_PARAM: the unknown-model entry)."""
    known = is_known(alias_field=alias_field, deployment_field=deployment_field)
    if alias == UNKNOWN_MODEL_PARAM:
        return ~known
    return Q(**{alias_field: alias}) & known


def label(model: str) -> str:
    return model or UNKNOWN_MODEL
