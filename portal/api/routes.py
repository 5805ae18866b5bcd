"""URL patterns of /api/v1 that answer with and without their trailing slash (`keys/1/revoke` and
`keys/1/revoke/`): operators type either, and Django's APPEND_SLASH cannot redirect a POST."""

from django.urls import re_path

LIST = {"get": "list", "post": "create"}
DETAIL = {"get": "retrieve"}
CHANGEABLE_DETAIL = {"get": "retrieve", "patch": "partial_update"}
ID = r"(?P<pk>[0-9]+)"


def endpoint(pattern: str, view, name: str):
    return re_path(rf"^{pattern}/?$", view, name=name)


def collection(prefix: str, viewset, name: str, detail: dict = DETAIL) -> list:
    """`prefix` (list, and create if the viewset has it) and `prefix/{id}` (retrieve, and what `detail` maps)."""
    return [
        endpoint(prefix, viewset.as_view(_actions_of(viewset, LIST)), f"{name}-list"),
        endpoint(rf"{prefix}/{ID}", viewset.as_view(_actions_of(viewset, detail)), f"{name}-detail"),
    ]


def _actions_of(viewset, actions: dict) -> dict:
    # A method the viewset does not implement answers 405 instead of failing inside DRF.
    return {method: action for method, action in actions.items() if hasattr(viewset, action)}
