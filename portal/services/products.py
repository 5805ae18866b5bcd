"""Publishing API products: a platform product (no tenant) is offered to every tenant, a tenant's only to it."""

from decimal import Decimal

from django.db import transaction

from portal import roles
from portal.errors import InvalidInput, NotAllowed
from portal.models import Product, Tenant
from portal.services import audit
from routing.models import ModelAlias


@transaction.atomic
def create_product(
    *,
    name: str,
    created_by,
    tenant: Tenant | None = None,
    description: str = "",
    aliases: list[ModelAlias] | None = None,
    requires_approval: bool = True,
    default_rpm: int | None = None,
    default_tpm: int | None = None,
    monthly_budget_usd: Decimal | None = None,
) -> Product:
    if tenant is None and not roles.is_platform_admin(created_by):
        raise NotAllowed("only platform admins can publish products to every tenant")
    if tenant is not None and not roles.is_tenant_admin(created_by, tenant):
        raise NotAllowed("only the tenant's admins can create its products")
    name = name.strip()
    if not name:
        raise InvalidInput("a product needs a name")
    # The unique constraint does not cover platform products: NULL tenants never collide in SQL.
    if Product.objects.filter(tenant=tenant, name=name).exists():
        raise InvalidInput("a product with that name exists already")
    if monthly_budget_usd is not None and monthly_budget_usd < 0:
        raise InvalidInput("the monthly budget must not be negative")
    product = Product.objects.create(
        tenant=tenant,
        name=name,
        description=description,
        requires_approval=requires_approval,
        default_rpm=default_rpm,
        default_tpm=default_tpm,
        monthly_budget_usd=monthly_budget_usd,
    )
    product.aliases.set(aliases or [])
    audit.record(
        tenant=tenant,
        actor=created_by,
        action="product.created",
        target=product,
        details={"name": name, "aliases": sorted(alias.name for alias in aliases or [])},
    )
    return product
