"""Signing in through an OpenID Connect provider (allauth's openid_connect app) against a loopback IdP."""

from urllib.parse import urlsplit

import httpx
import pytest
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth import get_user_model
from django.test import override_settings

from tests.upstreams.oidc_server import OIDCProvider
from tests.upstreams.server import LoopbackServer

pytestmark = pytest.mark.django_db

LOGIN_URL = "/accounts/oidc/testidp/login/"
CALLBACK_PATH = "/accounts/oidc/testidp/login/callback/"


def oidc_settings(*, server_url: str, secret: str = "idp-secret") -> dict:
    app = {
        "provider_id": "testidp",
        "name": "Test IdP",
        "client_id": "tollway-console",
        "secret": secret,
        "settings": {"server_url": server_url},
    }
    return {"openid_connect": {"APPS": [app]}}


@pytest.fixture
def idp():
    provider = OIDCProvider(client_id="tollway-console", client_secret="idp-secret", email="ada@idp.test")
    with LoopbackServer(provider) as server:
        provider.url = server.url
        yield provider


def sign_in_through(idp_url: str, client) -> httpx.Response:
    """Press the button, let the IdP answer the browser's visit, then bring its code back to the callback."""
    response = client.post(LOGIN_URL)
    assert response.status_code == 302 and response.headers["location"].startswith(f"{idp_url}/authorize?")
    at_idp = httpx.get(response.headers["location"], follow_redirects=False)
    assert at_idp.status_code == 302
    back = urlsplit(at_idp.headers["location"])
    assert back.path == CALLBACK_PATH
    return client.get(f"{back.path}?{back.query}")


def test_a_new_person_signs_in_through_the_idp_and_gets_an_account_with_its_email(client, idp):
    with override_settings(SOCIALACCOUNT_PROVIDERS=oidc_settings(server_url=idp.url)):
        response = sign_in_through(idp.url, client)

    assert response.status_code == 302 and response.headers["location"] == "/console/"
    user = get_user_model().objects.get(email="ada@idp.test")
    assert user.emailaddress_set.get().verified
    assert SocialAccount.objects.get(user=user).uid == "idp-user-1"
    assert client.get("/console/").status_code == 200
    token_call = next(r for r in idp.log.requests if r["path"] == "/token")
    assert token_call["headers"]["content-type"] == "application/x-www-form-urlencoded"


def test_signing_in_through_the_idp_again_reaches_the_same_account(client, idp):
    with override_settings(SOCIALACCOUNT_PROVIDERS=oidc_settings(server_url=idp.url)):
        sign_in_through(idp.url, client)
        first = get_user_model().objects.get(email="ada@idp.test")
        client.logout()
        assert client.get("/console/").status_code == 302

        response = sign_in_through(idp.url, client)

    assert response.status_code == 302 and response.headers["location"] == "/console/"
    assert get_user_model().objects.count() == 1 and SocialAccount.objects.count() == 1
    assert client.session["_auth_user_id"] == str(first.pk)
    assert client.get("/console/").status_code == 200


def test_a_wrong_client_secret_signs_nobody_in(client, idp):
    with override_settings(SOCIALACCOUNT_PROVIDERS=oidc_settings(server_url=idp.url, secret="not-the-secret")):
        response = sign_in_through(idp.url, client)

    assert response.status_code == 401  # allauth renders its authentication error page
    assert not get_user_model().objects.exists()
    assert "_auth_user_id" not in client.session
    assert client.get("/console/").status_code == 302
    assert [r["path"] for r in idp.log.requests].count("/userinfo") == 0


def test_the_sign_in_page_offers_the_idp_button_when_it_is_configured(client):
    with override_settings(SOCIALACCOUNT_PROVIDERS=oidc_settings(server_url="http://127.0.0.1:9")):
        page = client.get("/accounts/login/").content.decode()

    assert "Test IdP" in page and LOGIN_URL in page


def test_the_sign_in_page_offers_no_sso_button_when_none_is_configured(client):
    with override_settings(SOCIALACCOUNT_PROVIDERS={}):
        page = client.get("/accounts/login/").content.decode()

    assert "Test IdP" not in page and "/accounts/oidc/" not in page
    assert 'name="login"' in page  # the page itself rendered
