"""API products through /api/v1: platform products reach every tenant, a tenant's products only it."""

import pytest

from portal.models import AuditLogEntry, Membership, Product
from tests.factories import DeploymentFactory, TenantFactory, make_alias
from tests.portal.factories import MembershipFactory, ProductFactory, UserFactory, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def alias():
    return make_alias("gpt-4o-mini", DeploymentFactory())


def test_a_platform_admins_product_has_no_tenant_and_every_tenant_sees_it(alias):
    platform_admin = UserFactory(is_superuser=True)
    someone = MembershipFactory(role=Membership.Role.MEMBER).user
    body = {
        "name": "Mini",
        "description": "small and cheap",
        "aliases": ["gpt-4o-mini"],
        "requires_approval": False,
        "default_rpm": 60,
        "default_tpm": 100000,
        "monthly_budget_usd": "250.50",
    }

    created = token_client(platform_admin).post("/api/v1/products/", body, format="json")
    seen = token_client(someone).get("/api/v1/products/").json()["results"]

    assert created.status_code == 201, created.content
    assert created.json() | {"id": 0, "created_at": ""} == {
        **body,
        "monthly_budget_usd": "250.5",  # exact, in its shortest spelling
        "id": 0,
        "tenant": None,
        "prompts": [],  # bundled from the prompt's side (PATCH /api/v1/prompts/{id} {"products"})
        "is_published": True,
        "created_at": "",
    }
    assert [product["name"] for product in seen] == ["Mini"]
    assert AuditLogEntry.objects.filter(action="product.created", tenant=None, actor=platform_admin).exists()


def test_a_tenant_admins_product_belongs_to_their_tenant_and_no_other_sees_it(alias):
    admin = MembershipFactory(team=None, role=Membership.Role.TENANT_ADMIN).user
    stranger = MembershipFactory(role=Membership.Role.TENANT_ADMIN, team=None).user

    created = token_client(admin).post("/api/v1/products", {"name": "Ours", "aliases": ["gpt-4o-mini"]}, format="json")
    seen_by_stranger = token_client(stranger).get("/api/v1/products").json()["results"]

    assert created.status_code == 201, created.content
    assert Product.objects.get().tenant == admin.memberships.get().tenant
    assert seen_by_stranger == []


def test_an_admin_of_two_tenants_must_say_which(alias):
    admin = MembershipFactory(team=None, role=Membership.Role.TENANT_ADMIN).user
    MembershipFactory(user=admin, team=None, role=Membership.Role.TENANT_ADMIN)

    response = token_client(admin).post("/api/v1/products", {"name": "Ours"}, format="json")

    assert response.status_code == 400
    assert "tenant" in response.json()["detail"]
    assert not Product.objects.exists()


def test_a_product_name_is_unique_among_the_platforms_products(alias):
    ProductFactory(name="Mini", tenant=None)

    response = token_client(UserFactory(is_superuser=True)).post("/api/v1/products", {"name": "Mini"}, format="json")

    assert response.status_code == 400
    assert Product.objects.count() == 1


def test_a_product_over_an_unknown_alias_is_refused(alias):
    admin = UserFactory(is_superuser=True)

    response = token_client(admin).post("/api/v1/products", {"name": "X", "aliases": ["nope"]}, format="json")

    assert response.status_code == 400
    assert "aliases" in response.json()


def test_an_unpublished_product_is_hidden_from_members_but_not_from_their_admin():
    tenant = TenantFactory()
    product = ProductFactory(tenant=tenant, is_published=False)
    member = MembershipFactory(team__tenant=tenant, role=Membership.Role.MEMBER).user
    admin = MembershipFactory(tenant=tenant, team=None, role=Membership.Role.TENANT_ADMIN).user

    as_member = token_client(member).get(f"/api/v1/products/{product.pk}")
    as_admin = token_client(admin).get(f"/api/v1/products/{product.pk}")

    assert (as_member.status_code, as_admin.status_code) == (404, 200)
