from decimal import Decimal

import factory

from core.values import Principal
from portal.models import Team, Tenant
from routing.credentials import encrypt_secret
from routing.models import AliasDeployment, Deployment, ModelAlias, Provider


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    name = factory.Sequence(lambda n: f"Tenant {n}")
    slug = factory.Sequence(lambda n: f"tenant-{n}")


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Team {n}")
    slug = factory.Sequence(lambda n: f"team-{n}")


class ProviderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Provider

    name = factory.Sequence(lambda n: f"provider-{n}")
    kind = "openai-compatible"
    base_url = "http://127.0.0.1:9/v1"
    api_key_encrypted = factory.LazyFunction(lambda: encrypt_secret("sk-upstream-test"))
    timeout_s = 2.0
    connect_timeout_s = 1.0


class DeploymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Deployment

    name = factory.Sequence(lambda n: f"deployment-{n}")
    provider = factory.SubFactory(ProviderFactory)
    model = "gpt-4o-mini"
    input_per_1m = Decimal("0.15")
    output_per_1m = Decimal("0.60")
    context_window = 128000
    capabilities = ["chat", "tools", "json"]


class ModelAliasFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelAlias

    name = factory.Sequence(lambda n: f"alias-{n}")


def make_alias(name: str, *deployments: Deployment) -> ModelAlias:
    alias = ModelAliasFactory(name=name)
    for priority, deployment in enumerate(deployments):
        AliasDeployment.objects.create(alias=alias, deployment=deployment, priority=priority)
    return alias


def principal(*, rpm: int | None = None, tpm: int | None = None, **fields) -> Principal:
    """A key as the data plane sees it (key 3 of team 2 of tenant 1), with the RPM/TPM limits asked for."""
    values = {
        "key_id": 3,
        "key_prefix": "sk-tw-x",
        "secret_hash": "h",
        "tenant_id": 1,
        "tenant_name": "Acme",
        "team_id": 2,
        "team_name": "Checkout",
        "allowed_aliases": None,
        "expires_at": None,
        "is_revoked": False,
        "rpm_limit": rpm,
        "tpm_limit": tpm,
    }
    return Principal(**{**values, **fields})
