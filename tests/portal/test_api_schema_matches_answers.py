"""The OpenAPI schema of /api/v1 says what the API really answers: nullable where null is answered, the
envelope of every paginated list, the error statuses each operation gives with the JSON body they carry, and
the constraints the API enforces (non-blank names, positive money, ids within range, JSON bodies only)."""

import re

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db
ERROR = {"$ref": "#/components/schemas/Error"}
METHODS = ("get", "post", "patch", "put", "delete")


@pytest.fixture(scope="module")
def schema(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        return APIClient().get("/api/v1/schema/?format=json").json()


def operations(schema):
    for path, item in schema["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def test_users_that_can_be_deleted_are_nullable(schema):
    components = schema["components"]["schemas"]

    assert components["AuditLogEntry"]["properties"]["actor"]["nullable"] is True
    for name in ("Subscription", "Invitation"):
        for field in ("decided_by", "requested_by", "invited_by"):
            if field in components[name]["properties"]:
                assert components[name]["properties"][field]["nullable"] is True, (name, field)


def test_a_teams_members_are_declared_as_the_paginated_envelope_they_come_in(schema):
    answer = schema["paths"]["/api/v1/teams/{team_id}/members/"]["get"]["responses"]["200"]
    envelope = schema["components"]["schemas"]["PaginatedMembershipList"]

    assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/PaginatedMembershipList"}
    assert set(envelope["properties"]) == {"count", "next", "previous", "results"}


def test_every_operation_documents_its_errors_with_their_json_body(schema):
    for path, method, operation in operations(schema):
        responses = operation["responses"]
        if operation.get("security") != [{}] and "auth/token" not in path:
            assert responses["401"]["content"]["application/json"]["schema"] == ERROR, (method, path)
            assert responses["403"]["content"]["application/json"]["schema"] == ERROR, (method, path)
        if "{" in path:
            assert responses["404"]["content"]["application/json"]["schema"] == ERROR, (method, path)
        if method in ("post", "patch"):
            assert set(responses) >= {"400", "415"}, (method, path)
            any_of = responses["400"]["content"]["application/json"]["schema"]["anyOf"]
            assert any_of == [ERROR, {"$ref": "#/components/schemas/FieldErrors"}]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("post", "/api/v1/subscriptions/{id}/approve/", "409"),
        ("post", "/api/v1/keys/{id}/revoke/", "409"),
        ("post", "/api/v1/keys/{id}/rotate/", "409"),
        ("post", "/api/v1/auth/token/", "429"),
        ("post", "/api/v1/invitations/accept/", "404"),
        ("get", "/api/v1/usage/summary/", "404"),
        ("get", "/api/v1/keys/", "404"),  # a page past the last
    ],
)
def test_statuses_that_follow_from_what_an_operation_does_are_documented(schema, method, path, status):
    assert status in schema["paths"][path][method]["responses"]


def test_request_bodies_are_json_only(schema):
    for path, method, operation in operations(schema):
        if "requestBody" in operation:
            assert list(operation["requestBody"]["content"]) == ["application/json"], (method, path)


def test_names_must_not_be_blank_and_money_must_be_a_bounded_decimal_string(schema):
    components = schema["components"]["schemas"]
    name = components["Tenant"]["properties"]["name"]
    limit_usd = re.compile(components["Budget"]["properties"]["limit_usd"]["pattern"])
    price = re.compile(components["Deployment"]["properties"]["input_per_1m"]["pattern"])

    assert name["minLength"] == 1 and not re.search(name["pattern"], "   ") and re.search(name["pattern"], " a ")
    assert [bool(limit_usd.search(v)) for v in ("0", "0.000", "-1", "1e3", "0.5", "25.50", "1234567890")] == [
        False, False, False, False, True, True, False,
    ]  # fmt: skip
    assert [bool(price.search(v)) for v in ("0", "0.15", "-0.15", "0.12345678901")] == [True, True, False, False]


def test_ids_and_pages_in_the_query_are_bounded_and_may_be_empty(schema):
    parameters = {p["name"]: p for p in schema["paths"]["/api/v1/subscriptions/"]["get"]["parameters"]}

    assert parameters["team"]["schema"] == {"type": "integer", "format": "int64", "minimum": 1, "maximum": 2**63 - 1}
    assert parameters["page"]["schema"]["minimum"] == 1
    assert sorted(parameters["status"]["schema"]["enum"]) == ["active", "pending", "rejected", "suspended"]
    assert all(p["allowEmptyValue"] is True for p in parameters.values())


def test_path_ids_are_bounded_like_the_rows_they_name(schema):
    [parameter] = schema["paths"]["/api/v1/keys/{id}/"]["get"]["parameters"]

    assert parameter["schema"]["maximum"] == 2**63 - 1 and parameter["schema"]["minimum"] == 1
