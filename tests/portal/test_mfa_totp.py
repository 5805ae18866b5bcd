"""Turning on an authenticator app (TOTP) through allauth's MFA pages, then signing in with the second step."""

import base64
import hashlib
import hmac
import struct
import time

import pytest
from allauth.mfa.models import Authenticator
from django.test import Client
from django.urls import reverse

from tests.portal.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

ACTIVATE_URL = "/accounts/2fa/totp/activate/"
AUTHENTICATE_URL = "/accounts/2fa/authenticate/"
REAUTHENTICATE_URL = "/accounts/reauthenticate/"


def totp(secret: str, *, at: float | None = None, digits: int = 6, period: int = 30) -> str:
    """RFC 6238 over RFC 4226 HOTP with HMAC-SHA1, as authenticator apps compute it."""
    counter = int((time.time() if at is None else at) // period)
    key = base64.b32decode(secret, casefold=True)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 10**digits:0{digits}d}"


def a_wrong_code(secret: str) -> str:
    """A code that is not valid in the current, previous or next period (allauth's tolerance)."""
    now = time.time()
    valid = {totp(secret, at=now + shift) for shift in (-60, -30, 0, 30, 60)}
    return next(code for code in (f"{n:06d}" for n in range(100_000, 1_000_000, 7919)) if code not in valid)


def sign_in_with_password(client: Client, email: str):
    return client.post(reverse("account_login"), {"login": email, "password": PASSWORD})


def confirm_password_for_a_sensitive_change(client: Client) -> None:
    """Changing one's second factor asks for the password again, even right after signing in."""
    page = client.get(ACTIVATE_URL)
    assert page.status_code == 302 and page.headers["location"].startswith(REAUTHENTICATE_URL)
    response = client.post(page.headers["location"], {"password": PASSWORD})
    assert response.status_code == 302 and response.headers["location"] == ACTIVATE_URL


def activate_totp(client: Client) -> str:
    """Read the secret the activation page offers, answer with its current code; returns the secret."""
    confirm_password_for_a_sensitive_change(client)
    page = client.get(ACTIVATE_URL)
    assert page.status_code == 200
    secret = page.context["form"].secret
    assert secret in page.content.decode()  # shown for typing into an app that cannot scan the QR code
    response = client.post(ACTIVATE_URL, {"code": totp(secret)})
    assert response.status_code == 302, response.content.decode()
    return secret


def test_my_totp_matches_the_rfc_6238_test_vector():
    secret = base64.b32encode(b"12345678901234567890").decode()
    assert totp(secret, at=59, digits=8) == "94287082"
    assert totp(secret, at=1111111109, digits=8) == "07081804"


def test_a_verified_user_activates_an_authenticator_app_with_a_code_from_it(client):
    user = UserFactory(email="dev@acme.test")
    assert sign_in_with_password(client, "dev@acme.test").headers["location"] == "/console/"

    activate_totp(client)

    authenticator = Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP)
    assert authenticator.data["secret"]


def test_activating_with_a_wrong_code_is_refused(client):
    user = UserFactory(email="dev@acme.test")
    sign_in_with_password(client, "dev@acme.test")
    confirm_password_for_a_sensitive_change(client)
    secret = client.get(ACTIVATE_URL).context["form"].secret

    response = client.post(ACTIVATE_URL, {"code": a_wrong_code(secret)})

    assert response.status_code == 200 and response.context["form"].errors["code"]
    assert not Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()


def test_signing_in_after_activation_asks_for_the_code_and_refuses_a_wrong_one(client):
    UserFactory(email="dev@acme.test")
    sign_in_with_password(client, "dev@acme.test")
    secret = activate_totp(client)
    client.logout()

    browser = Client()
    response = sign_in_with_password(browser, "dev@acme.test")
    assert response.status_code == 302 and response.headers["location"] == AUTHENTICATE_URL
    assert browser.get("/console/").status_code == 302  # the password alone does not sign in

    response = browser.post(AUTHENTICATE_URL, {"code": a_wrong_code(secret)})

    assert response.status_code == 200 and response.context["form"].errors["code"]
    assert "_auth_user_id" not in browser.session
    assert browser.get("/console/").status_code == 302


def test_signing_in_after_activation_succeeds_with_the_current_code(client):
    user = UserFactory(email="dev@acme.test")
    sign_in_with_password(client, "dev@acme.test")
    secret = activate_totp(client)
    client.logout()

    browser = Client()
    assert sign_in_with_password(browser, "dev@acme.test").headers["location"] == AUTHENTICATE_URL
    response = browser.post(AUTHENTICATE_URL, {"code": totp(secret)})

    assert response.status_code == 302 and response.headers["location"] == "/console/"
    assert browser.session["_auth_user_id"] == str(user.pk)
    assert browser.get("/console/").status_code == 200


def test_a_code_that_signed_someone_in_cannot_be_replayed(client):
    UserFactory(email="dev@acme.test")
    sign_in_with_password(client, "dev@acme.test")
    secret = activate_totp(client)
    client.logout()
    first, second = Client(), Client()
    code = totp(secret)
    sign_in_with_password(first, "dev@acme.test")
    assert first.post(AUTHENTICATE_URL, {"code": code}).status_code == 302

    sign_in_with_password(second, "dev@acme.test")
    response = second.post(AUTHENTICATE_URL, {"code": code})

    assert response.status_code == 200 and response.context["form"].errors["code"]
    assert "_auth_user_id" not in second.session
