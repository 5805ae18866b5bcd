"""Every error under /api/v1/ is JSON `{"detail", "code"}` (or a serializer's field errors), never Django's HTML
page: unknown paths, wrong methods, malformed or non-JSON bodies, CSRF failures of session calls, crashes."""

import pytest
from rest_framework.test import APIClient

from portal import selectors
from tests.portal.factories import UserFactory, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    return token_client(UserFactory())


def assert_json_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert response["content-type"] == "application/json"
    assert response.json()["code"] == code
    assert b"<html" not in response.content.lower()


@pytest.mark.parametrize("path", ["/api/v1/nope/", "/api/v1/keys/abc/", "/api/v1/keys/1/explode", "/api/v2/keys/"])
@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_a_path_that_names_no_endpoint_answers_a_json_404(client, path, method):
    assert_json_error(getattr(client, method)(path), 404, "not_found")


def test_an_anonymous_post_to_an_unknown_path_is_a_404_not_a_csrf_page():
    assert_json_error(APIClient(enforce_csrf_checks=True).post("/api/v1/nope/", {}), 404, "not_found")


def test_a_method_the_endpoint_does_not_have_answers_a_json_405_with_allow(client):
    response = client.delete("/api/v1/tenants/")

    assert_json_error(response, 405, "method_not_allowed")
    assert response["allow"] == "GET, POST, HEAD, OPTIONS"


def test_a_malformed_json_body_answers_a_json_400(client):
    response = client.post("/api/v1/tenants/", data=b'{"name": ', content_type="application/json")

    assert_json_error(response, 400, "parse_error")


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_json_answers_a_json_415(client, content_type):
    response = client.post("/api/v1/tenants/", data=b"name=Acme", content_type=content_type)

    assert_json_error(response, 415, "unsupported_media_type")


def test_a_multipart_form_answers_a_json_415(client):
    assert_json_error(
        client.post("/api/v1/tenants/", {"name": "Acme"}, format="multipart"), 415, "unsupported_media_type"
    )


def test_a_session_call_without_its_csrf_token_answers_a_json_403():
    session = APIClient(enforce_csrf_checks=True)
    session.force_login(UserFactory())

    response = session.post("/api/v1/tenants/", {"name": "Acme"}, format="json")

    assert_json_error(response, 403, "permission_denied")
    assert "CSRF" in response.json()["detail"]


def test_a_crash_in_a_view_answers_a_json_500_without_a_trace(client, monkeypatch, caplog):
    def explode(*, user):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(selectors, "visible_tenants", explode)

    response = client.get("/api/v1/tenants/")

    assert_json_error(response, 500, "server_error")
    assert b"secret internals" not in response.content and b"Traceback" not in response.content
    assert "secret internals" in caplog.text  # logged for the operator, with its traceback


def test_outside_the_api_django_keeps_its_own_404_page(client):
    response = client.get("/console/no-such-page/")

    assert response.status_code == 404
    assert "application/json" not in response["content-type"]


@pytest.mark.parametrize("path", ["/api/v1/tenants/", "/api/v1/keys/", "/api/v1/teams/", "/api/v1/auth/token/"])
def test_json_nested_past_the_recursion_limit_is_a_json_400_on_every_endpoint(client, path):
    # A few kilobytes that DRF's parser would turn into a RecursionError (a 500) before any view code runs.
    deep = "[" * 100_000 + "]" * 100_000
    response = client.post(path, deep, content_type="application/json")
    assert_json_error(response, 400, "parse_error")
