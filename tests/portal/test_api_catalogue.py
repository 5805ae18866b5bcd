"""The model catalogue through /api/v1: credentials never read back, upstream URLs checked, exact prices,
ordered alias routes."""

from decimal import Decimal

import pytest

from portal.models import AuditLogEntry
from routing.credentials import decrypt_secret
from routing.models import Deployment, ModelAlias, Provider
from tests.factories import DeploymentFactory, ProviderFactory, make_alias
from tests.portal.factories import UserFactory, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin():
    return token_client(UserFactory(is_superuser=True))


def create_provider(client, **body):
    body = {"name": "openai-main", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", **body}
    return client.post("/api/v1/catalogue/providers/", body, format="json")


def test_a_providers_key_is_stored_encrypted_and_never_read_back(admin):
    created = create_provider(admin, api_key="sk-upstream-secret")
    reader = token_client(UserFactory())
    listed = reader.get("/api/v1/catalogue/providers/")
    fetched = reader.get(f"/api/v1/catalogue/providers/{created.json()['id']}")

    assert created.status_code == 201, created.content
    provider = Provider.objects.get()
    assert decrypt_secret(provider.api_key_encrypted) == "sk-upstream-secret"
    for answer in (created, listed, fetched):
        assert "sk-upstream-secret" not in answer.content.decode()
        assert provider.api_key_encrypted not in answer.content.decode()
        assert "api_key_encrypted" not in answer.content.decode()
    assert fetched.json()["has_api_key"] is True
    entry = AuditLogEntry.objects.get(action="provider.created")
    assert entry.details["api_key"] == "set" and "sk-upstream-secret" not in str(entry.details)


@pytest.mark.parametrize(
    "base_url",
    ["http://169.254.169.254/latest", "http://metadata.google.internal/v1", "file:///etc/passwd"],
)
def test_an_unsafe_upstream_url_is_refused_with_the_reason(admin, base_url):
    response = create_provider(admin, base_url=base_url)

    assert response.status_code == 400
    assert list(response.json()) == ["base_url"]
    assert not Provider.objects.exists()


def test_a_loopback_upstream_is_refused_unless_the_platform_allows_it(admin, settings):
    settings.TOLLWAY_ALLOW_LOOPBACK_UPSTREAMS = False

    response = create_provider(admin, base_url="http://127.0.0.1:9/v1")

    assert response.status_code == 400
    assert "loopback" in response.json()["base_url"][0]


def test_changing_a_provider_keeps_its_key_unless_a_new_one_is_given(admin):
    provider = ProviderFactory(name="main")
    stored = provider.api_key_encrypted

    kept = admin.patch(f"/api/v1/catalogue/providers/{provider.pk}", {"timeout_s": 30}, format="json")
    provider.refresh_from_db()
    assert (kept.status_code, provider.timeout_s, provider.api_key_encrypted) == (200, 30.0, stored)

    replaced = admin.patch(f"/api/v1/catalogue/providers/{provider.pk}", {"api_key": "sk-new"}, format="json")
    provider.refresh_from_db()
    assert replaced.status_code == 200
    assert decrypt_secret(provider.api_key_encrypted) == "sk-new"


def test_a_name_that_is_taken_is_not_overwritten(admin):
    ProviderFactory(name="openai-main", base_url="http://127.0.0.1:1/v1")

    response = create_provider(admin, base_url="http://127.0.0.1:2/v1")

    assert response.status_code == 400
    assert Provider.objects.get().base_url == "http://127.0.0.1:1/v1"


def test_deployment_prices_are_exact_decimal_strings(admin):
    provider = ProviderFactory(name="main")

    response = admin.post(
        "/api/v1/catalogue/deployments",
        {
            "name": "mini",
            "provider": provider.name,
            "model": "gpt-4o-mini",
            "input_per_1m": "0.15",
            "output_per_1m": "0.6",
            "cached_input_per_1m": "0.075",
            "capabilities": ["chat", "json"],
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["input_per_1m"], body["output_per_1m"], body["cached_input_per_1m"]) == ("0.15", "0.6", "0.075")
    deployment = Deployment.objects.get()
    assert (deployment.input_per_1m, deployment.cached_input_per_1m) == (Decimal("0.15"), Decimal("0.075"))


def test_a_negative_price_is_refused(admin):
    provider = ProviderFactory(name="main")
    body = {"name": "mini", "provider": provider.name, "model": "m", "input_per_1m": "-1", "output_per_1m": "1"}

    response = admin.post("/api/v1/catalogue/deployments/", body, format="json")

    assert response.status_code == 400
    assert "input_per_1m" in response.json()


def test_an_alias_keeps_its_deployments_in_the_order_given(admin):
    first, second = DeploymentFactory(name="first"), DeploymentFactory(name="second")

    created = admin.post(
        "/api/v1/catalogue/aliases/", {"name": "chat", "deployments": ["second", "first"]}, format="json"
    )
    alias_id = created.json()["id"]
    reordered = admin.patch(f"/api/v1/catalogue/aliases/{alias_id}/", {"deployments": ["first"]}, format="json")

    assert created.status_code == 201 and created.json()["deployments"] == ["second", "first"]
    assert reordered.status_code == 200 and reordered.json()["deployments"] == ["first"]
    assert [route.deployment for route in ModelAlias.objects.get().routes.all()] == [first]
    assert second.routes.count() == 0


def test_an_alias_over_an_unknown_deployment_is_refused(admin):
    response = admin.post("/api/v1/catalogue/aliases", {"name": "chat", "deployments": ["nowhere"]}, format="json")

    assert response.status_code == 400
    assert response.json() == {"deployments": ["unknown deployment 'nowhere'"]}
    assert not ModelAlias.objects.exists()


def test_everyone_signed_in_reads_the_aliases(admin):
    make_alias("chat", DeploymentFactory(name="d1"))

    response = token_client(UserFactory()).get("/api/v1/catalogue/aliases/")

    assert response.status_code == 200
    assert [(a["name"], a["deployments"]) for a in response.json()["results"]] == [("chat", ["d1"])]
