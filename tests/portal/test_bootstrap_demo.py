import io

import pytest
from django.core.management import call_command

from portal.models import APIKey
from routing.models import ModelAlias

pytestmark = pytest.mark.django_db


def run_bootstrap() -> dict[str, str]:
    out = io.StringIO()
    call_command("bootstrap_demo", "--gateway-url", "http://127.0.0.1:8000", "--with-demo-provider", stdout=out)
    return dict(line.split("=", 1) for line in out.getvalue().splitlines())


def test_the_printed_admin_login_signs_in_to_the_console(client):
    printed = run_bootstrap()

    response = client.post(
        "/accounts/login/", {"login": "admin@localhost", "password": printed["TOLLWAY_ADMIN_PASSWORD"]}
    )

    assert response.status_code == 302 and response["Location"].startswith("/console/")
    assert client.get("/console/").status_code == 200


def test_each_start_issues_a_fresh_demo_key_and_revokes_the_last(client):
    first, second = run_bootstrap(), run_bootstrap()

    assert first["TOLLWAY_DEMO_KEY"] != second["TOLLWAY_DEMO_KEY"]
    assert first["TOLLWAY_ADMIN_PASSWORD"] == second["TOLLWAY_ADMIN_PASSWORD"]
    assert APIKey.objects.filter(name="demo key", is_revoked=False).count() == 1
    assert set(ModelAlias.objects.values_list("name", flat=True)) >= {"gpt-4o-mini", "demo-chat", "demo-embed"}
