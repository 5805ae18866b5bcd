"""The portal journey in a real browser: sign up, create a team, request access, get approved, create and copy
a key, call the gateway with it, get suspended, and stay out of another tenant's pages."""

import re
import time

import openai
import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core import mail

from portal.models import Product, Subscription, Team
from routing.models import ModelAlias
from tests.e2e.conftest import screenshot
from tests.gateway import start_gateway

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "correct-horse-battery-9"


def verified_user(email: str, *, superuser: bool = False):
    User = get_user_model()
    make = User.objects.create_superuser if superuser else User.objects.create_user
    user = make(username=email, email=email, password=PASSWORD)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


def sign_in(page, base: str, email: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.locator("form button[type=submit], form input[type=submit]").last.click()
    page.wait_for_url(re.compile(r".*/console/.*"))


def chat_status(base: str, key: str) -> int:
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
        return 200
    except openai.APIStatusError as error:
        return error.status_code


def eventually(base: str, key: str, expected: int, bound_s: float = 5.0) -> None:
    deadline = time.monotonic() + bound_s
    while chat_status(base, key) != expected:
        assert time.monotonic() < deadline, f"the key never answered {expected}"
        time.sleep(0.1)


def test_a_new_team_gets_a_working_key_through_the_portal_and_loses_it_on_suspension(browser, catalogue):
    verified_user("root@platform.test", superuser=True)
    outsider = verified_user("eve@other.test")

    with start_gateway() as gateway:
        base = gateway.url

        # 0. A platform admin publishes an API product over the gpt-4o-mini alias.
        admin_ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        admin = admin_ctx.new_page()
        sign_in(admin, base, "root@platform.test")
        admin.goto(f"{base}/console/products/new/")
        publish = admin.get_by_test_id("new-product-form")
        publish.locator("input[name=name]").fill("GPT-4o mini")
        publish.locator("textarea[name=description]").fill("Fast and cheap")
        alias_id = ModelAlias.objects.get(name="gpt-4o-mini").pk
        publish.locator(f"input[name=aliases][value='{alias_id}']").check()
        screenshot(admin, "00-publish-product")
        publish.locator("button[type=submit]").click()
        admin.wait_for_url(re.compile(r".*/console/catalogue/"))
        product = Product.objects.get(name="GPT-4o mini")
        assert product.tenant is None and product.requires_approval

        owner_ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        owner_ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
        page = owner_ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        # 1. Sign up, confirm the email from the link we were sent.
        page.goto(f"{base}/accounts/signup/")
        page.fill("input[name=email]", "ada@acme.test")
        page.fill("input[name=password1]", PASSWORD)
        page.fill("input[name=password2]", PASSWORD)
        screenshot(page, "01-sign-up")
        page.locator("form button[type=submit], form input[type=submit]").last.click()
        page.wait_for_load_state()
        confirm_path = re.search(r"(/accounts/confirm-email/\S+/)", mail.outbox[-1].body).group(1)
        page.goto(base + confirm_path)
        page.wait_for_url(re.compile(r".*/console/.*"))
        screenshot(page, "02-console-after-sign-up")

        # 2. Create an organisation and a team.
        page.goto(f"{base}/console/teams/new/")
        form = page.get_by_test_id("create-team-form")
        form.locator("input[name=organisation_name]").fill("Acme")
        form.locator("input[name=team_name]").fill("Checkout")
        screenshot(page, "03-create-team")
        form.locator("button[type=submit], input[type=submit]").first.click()
        page.wait_for_load_state()
        team = Team.objects.get(name="Checkout")

        # 3. Request access to the product.
        page.goto(f"{base}/console/catalogue/")
        screenshot(page, "04-catalogue")
        page.get_by_test_id(f"request-access-{product.pk}").click()
        subscribe = page.get_by_test_id("subscribe-form")
        subscribe.locator("textarea[name=purpose], input[name=purpose]").fill("Checkout assistant")
        screenshot(page, "05-request-access")
        subscribe.locator("button[type=submit], input[type=submit]").first.click()
        page.wait_for_load_state()
        subscription = Subscription.objects.get(team=team, product=product)
        assert subscription.status == Subscription.Status.PENDING

        # 4. The platform admin approves it.
        admin.goto(f"{base}/console/subscriptions/")
        screenshot(admin, "06-approvals-queue")
        admin.get_by_test_id(f"approve-{subscription.pk}").click()
        admin.wait_for_load_state()
        subscription.refresh_from_db()
        assert subscription.status == Subscription.Status.ACTIVE

        # 5. The owner creates a key, sees it once and copies it.
        page.goto(f"{base}/console/teams/{team.pk}/keys/new/")
        key_form = page.get_by_test_id("new-key-form")
        key_form.locator("input[name=name]").fill("checkout-prod")
        key_form.locator("button[type=submit], input[type=submit]").first.click()
        secret = page.get_by_test_id("new-key-secret").inner_text().strip()
        assert secret.startswith("sk-tw-")
        page.get_by_test_id("copy-key-button").click()
        assert page.evaluate("navigator.clipboard.readText()") == secret
        screenshot(page, "07-key-shown-once")

        # 6. The key works with the openai SDK.
        eventually(base, secret, 200)

        # 7. The admin suspends the subscription: the same key now gets 403.
        admin.goto(f"{base}/console/subscriptions/")
        admin.get_by_test_id(f"suspend-{subscription.pk}").click()
        admin.wait_for_load_state()
        screenshot(admin, "08-suspended")
        eventually(base, secret, 403)

        # 8. Someone of another tenant cannot open any of these pages.
        outsider_ctx = browser.new_context()
        other = outsider_ctx.new_page()
        sign_in(other, base, outsider.email)
        for path in (f"/console/teams/{team.pk}/", f"/console/teams/{team.pk}/keys/new/", "/console/subscriptions/"):
            response = other.goto(base + path)
            assert response.status in (403, 404), path
        screenshot(other, "09-outsider-refused")

        for context in (owner_ctx, admin_ctx, outsider_ctx):
            context.close()
    assert errors == []
