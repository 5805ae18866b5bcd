"""Tenant and platform admins publish API products from the console."""

import pytest
from django.urls import reverse

from portal.models import AuditLogEntry, Product
from routing.models import ModelAlias
from tests.portal.test_console_world import build_world

pytestmark = pytest.mark.django_db
URL = reverse("console:product-new")


@pytest.fixture
def world(db):
    world = build_world()
    world.alias = ModelAlias.objects.create(name="gpt-4o-mini")
    return world


def test_a_tenant_admin_publishes_a_product_for_their_own_organisation(client, world):
    client.force_login(world.users["tenant_admin"])

    response = client.post(
        URL,
        {
            "name": "Fast chat",
            "tenant": str(world.tenant.pk),
            "aliases": [world.alias.pk],
            "requires_approval": "on",
            "default_rpm": "60",
            "monthly_budget_usd": "250.00",
        },
    )

    assert response.status_code == 302
    product = Product.objects.get(name="Fast chat")
    assert product.tenant == world.tenant and list(product.aliases.all()) == [world.alias]
    assert product.requires_approval and product.default_rpm == 60
    assert AuditLogEntry.objects.filter(action__startswith="product.", target_id=str(product.pk)).exists()


def test_a_tenant_admin_cannot_publish_to_every_organisation_or_to_another(client, world):
    client.force_login(world.users["tenant_admin"])

    for tenant in ("", str(world.rival_team.tenant.pk)):
        response = client.post(URL, {"name": "Sneaky", "tenant": tenant, "aliases": [world.alias.pk]})
        assert response.status_code == 200 and "tenant" in response.context["form"].errors

    assert not Product.objects.filter(name="Sneaky").exists()


def test_a_platform_admin_publishes_to_every_organisation(client, world):
    client.force_login(world.users["platform_admin"])

    client.post(URL, {"name": "Everyone", "tenant": "", "aliases": [world.alias.pk]})

    assert Product.objects.get(name="Everyone").tenant is None


@pytest.mark.parametrize("role", ["member", "team_owner", "finance"])
def test_people_who_are_not_admins_cannot_open_the_page(client, world, role):
    client.force_login(world.users[role])
    assert client.get(URL).status_code == 403


def test_a_missing_model_list_is_reported_beside_its_field(client, world):
    client.force_login(world.users["tenant_admin"])
    response = client.post(URL, {"name": "Empty", "tenant": str(world.tenant.pk)})
    assert response.status_code == 200 and "aliases" in response.context["form"].errors
