import io
import stat

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from portal import services
from portal.models import APIKey, Product, Subscription
from routing.models import ModelAlias

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path):
    # Each test starts as a fresh checkout: no admin password or demo key kept from another test.
    settings.DATA_DIR = tmp_path
    return tmp_path


def run_bootstrap() -> dict[str, str]:
    out = io.StringIO()
    call_command("bootstrap_demo", "--gateway-url", "http://127.0.0.1:8000", "--with-demo-provider", stdout=out)
    return dict(line.split("=", 1) for line in out.getvalue().splitlines() if line.startswith("TOLLWAY_"))


def signed_in_admin(client, printed):
    client.post("/accounts/login/", {"login": "admin@localhost", "password": printed["TOLLWAY_ADMIN_PASSWORD"]})
    return client


def test_the_printed_admin_login_signs_in_to_the_console(client):
    printed = run_bootstrap()

    response = client.post(
        "/accounts/login/", {"login": "admin@localhost", "password": printed["TOLLWAY_ADMIN_PASSWORD"]}
    )

    assert response.status_code == 302 and response["Location"].startswith("/console/")
    assert client.get("/console/").status_code == 200


def test_a_restart_keeps_the_demo_key_so_an_exported_key_keeps_working(data_dir):
    first, second = run_bootstrap(), run_bootstrap()

    assert first["TOLLWAY_DEMO_KEY_STATE"] == "new" and second["TOLLWAY_DEMO_KEY_STATE"] == "kept"
    assert first["TOLLWAY_DEMO_KEY"] == second["TOLLWAY_DEMO_KEY"]
    assert first["TOLLWAY_ADMIN_PASSWORD"] == second["TOLLWAY_ADMIN_PASSWORD"]
    assert APIKey.objects.filter(name="demo key", is_revoked=False).count() == 1
    key_file = data_dir / "demo-key"
    assert key_file.read_text() == first["TOLLWAY_DEMO_KEY"]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert set(ModelAlias.objects.values_list("name", flat=True)) >= {"gpt-4o-mini", "demo-chat", "demo-embed"}


def test_a_revoked_demo_key_is_replaced_and_the_start_says_so(data_dir):
    first = run_bootstrap()
    services.revoke_api_key(api_key=APIKey.objects.get(name="demo key"))

    second = run_bootstrap()

    assert second["TOLLWAY_DEMO_KEY_STATE"] == "replaced"
    assert second["TOLLWAY_DEMO_KEY"] != first["TOLLWAY_DEMO_KEY"]
    assert (data_dir / "demo-key").read_text() == second["TOLLWAY_DEMO_KEY"]
    assert APIKey.objects.filter(name="demo key", is_revoked=False).count() == 1


def test_the_first_start_seeds_a_product_needing_approval_and_one_pending_request_once(client):
    printed = run_bootstrap()
    run_bootstrap()

    [product] = Product.objects.all()
    assert product.requires_approval
    assert set(product.aliases.values_list("name", flat=True)) == {"gpt-4o-mini", "demo-chat"}
    [request] = Subscription.objects.all()
    assert request.status == Subscription.Status.PENDING and request.team.name == "demo"
    admin = signed_in_admin(client, printed)
    assert "Demo chat" in admin.get("/console/catalogue/").content.decode()
    assert "Prototype a support chatbot" in admin.get("/console/subscriptions/").content.decode()
    assert "demo requests Demo chat" in admin.get("/console/inbox/").content.decode()


def test_a_decided_request_is_not_filed_again_on_the_next_start():
    run_bootstrap()
    admin = get_user_model().objects.get(username="admin")
    services.reject_subscription(subscription=Subscription.objects.get(), decided_by=admin, reason="not now")

    run_bootstrap()

    assert list(Subscription.objects.values_list("status", flat=True)) == [Subscription.Status.REJECTED]
