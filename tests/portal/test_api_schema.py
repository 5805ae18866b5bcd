"""The OpenAPI schema of /api/v1 is valid OpenAPI 3, and its docs page is plain HTML that needs no network."""

import pytest
from openapi_spec_validator import validate
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

OPERATIONS = [
    ("post", "/api/v1/auth/token/"),
    ("get", "/api/v1/tenants/"),
    ("post", "/api/v1/teams/"),
    ("post", "/api/v1/teams/{team_id}/members/"),
    ("post", "/api/v1/products/"),
    ("post", "/api/v1/subscriptions/{id}/approve/"),
    ("post", "/api/v1/subscriptions/{id}/reject/"),
    ("post", "/api/v1/subscriptions/{id}/suspend/"),
    ("post", "/api/v1/subscriptions/{id}/resume/"),
    ("post", "/api/v1/keys/{id}/revoke/"),
    ("post", "/api/v1/keys/{id}/rotate/"),
    ("patch", "/api/v1/catalogue/providers/{id}/"),
    ("get", "/api/v1/audit-log/"),
]


def test_the_schema_is_valid_openapi_3_and_describes_every_write():
    response = APIClient().get("/api/v1/schema/?format=json")

    assert response.status_code == 200
    schema = response.json()
    validate(schema)
    assert schema["openapi"].startswith("3.")
    for method, path in OPERATIONS:
        assert method in schema["paths"][path], (method, path)
    issued_key = schema["components"]["schemas"]["IssuedKey"]["properties"]
    assert issued_key["secret"]["readOnly"] is True
    provider = schema["components"]["schemas"]["Provider"]["properties"]
    assert provider["api_key"]["writeOnly"] is True and "api_key_encrypted" not in provider


def test_the_docs_page_is_html_that_loads_nothing_from_elsewhere():
    response = APIClient().get("/api/v1/docs/")

    assert response.status_code == 200
    assert response["content-type"].startswith("text/html")
    page = response.content.decode()
    assert "<h1>Tollway API" in page and "/api/v1/subscriptions/{id}/approve/" in page
    assert "<script" not in page and "https://" not in page
