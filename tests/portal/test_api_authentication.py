"""Signing in to /api/v1: a token for an email and password, or the console's session with its CSRF token."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from portal.models import Membership, Tenant
from tests.portal.factories import PASSWORD, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_an_email_and_password_get_the_users_token_which_then_signs_requests():
    membership = MembershipFactory(team=None, role=Membership.Role.TENANT_ADMIN, user__email="ada@acme.test")
    client = APIClient()

    response = client.post("/api/v1/auth/token", {"email": "Ada@Acme.test", "password": PASSWORD}, format="json")

    assert response.status_code == 200
    token = response.json()["token"]
    assert token == Token.objects.get(user=membership.user).key
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    tenants = client.get("/api/v1/tenants/").json()["results"]
    assert [t["id"] for t in tenants] == [membership.tenant.pk]


def test_a_wrong_password_gets_no_token():
    UserFactory(email="ada@acme.test")

    response = APIClient().post("/api/v1/auth/token/", {"email": "ada@acme.test", "password": "not-it"}, format="json")

    assert response.status_code == 400
    assert response.json() == {"detail": "the email or password is wrong", "code": "invalid_credentials"}
    assert not Token.objects.exists()


def test_an_unverified_email_address_gets_no_token_while_verification_is_mandatory(settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    UserFactory(email="new@acme.test", verified=False)

    response = APIClient().post("/api/v1/auth/token", {"email": "new@acme.test", "password": PASSWORD}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "email_not_verified"


def test_a_made_up_token_is_refused_with_401():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")

    response = client.get("/api/v1/tenants/")

    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_a_session_write_needs_the_csrf_token_and_works_with_it():
    user = UserFactory(email="ada@acme.test")
    client = APIClient(enforce_csrf_checks=True)
    # Sign in through the console's own form, as a browser would.
    client.get("/accounts/login/")
    signed_in = client.post(
        "/accounts/login/",
        {"login": "ada@acme.test", "password": PASSWORD, "csrfmiddlewaretoken": client.cookies["csrftoken"].value},
    )
    assert signed_in.status_code == 302

    refused = client.post("/api/v1/tenants/", {"name": "Acme"}, format="json")
    accepted = client.post(
        "/api/v1/tenants/", {"name": "Acme"}, format="json", HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value
    )

    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    assert accepted.status_code == 201, accepted.content
    assert Tenant.objects.get().memberships.get().user == user
