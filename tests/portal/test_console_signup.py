"""Signing up through allauth with mandatory email verification, then landing in the console."""

import re

import pytest
from django.core import mail
from django.urls import reverse

from portal.models import Team
from tests.portal.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def test_a_visitor_signs_up_confirms_the_emailed_link_and_lands_on_the_console_onboarding(client):
    response = client.post(
        reverse("account_signup"),
        {"email": "founder@initech.test", "password1": "a-long-passphrase-42", "password2": "a-long-passphrase-42"},
    )
    assert response.status_code == 302 and response.headers["location"] == reverse("account_email_verification_sent")
    assert client.get("/console/").status_code == 302  # not signed in before verifying

    (message,) = mail.outbox
    assert message.to == ["founder@initech.test"]
    link = re.search(r"https?://testserver(/accounts/confirm-email/[^/\s]+/)", message.body).group(1)
    response = client.get(link, follow=True)

    assert response.redirect_chain[-1][0] == "/console/"
    assert 'data-testid="onboarding"' in response.content.decode()

    client.post(reverse("console:team-new"), {"organisation_name": "Initech", "team_name": "Payments"})
    assert Team.objects.get(name="Payments").memberships.get().user.email == "founder@initech.test"


def test_the_sign_in_page_wears_the_products_layout_with_errors_shown_in_the_form(client):
    UserFactory(email="dev@acme.test")

    response = client.post(reverse("account_login"), {"login": "dev@acme.test", "password": "wrong"})

    page = response.content.decode()
    assert "Tollway" in page and "/static/portal/console.css" in page
    assert 'class="card entrance-card"' in page
    assert 'class="form-errors"' in page and "not correct" in page


def test_a_verified_user_signs_in_with_email_and_password_and_reaches_the_console(client):
    UserFactory(email="dev@acme.test")

    response = client.post(reverse("account_login"), {"login": "dev@acme.test", "password": PASSWORD}, follow=True)

    assert response.redirect_chain[-1][0] == "/console/"
    assert 'data-testid="nav-console"' in response.content.decode()


def test_signing_up_with_mismatched_passwords_shows_the_error_next_to_the_field(client):
    response = client.post(
        reverse("account_signup"),
        {"email": "founder@initech.test", "password1": "a-long-passphrase-42", "password2": "different-42-x"},
    )

    page = response.content.decode()
    block = page[page.index('id="field-password2"') :].split('id="field-')[1]
    assert "You must type the same password each time." in block
    assert not mail.outbox
