"""Keeping a test run as an example of a version: what it was given, where it ran, what came back, what it cost.

The run happened in the browser (it called /v1 with the user's own key), so what the page reports is only
trusted as far as it can be checked: the alias must exist, the deployment must be one of the alias's, and the
cost is priced here, in Decimal, from the catalogue's prices and the token counts, never taken from the page.
"""

from decimal import Decimal
from typing import Any

from django.db import transaction

from billing.pricing import cost_of
from core.values import ModelPrice, TokenUsage
from portal import roles
from portal.errors import NotAllowed
from portal.prompts.models import PromptExample, PromptVersion
from portal.prompts.services import PromptInvalid
from portal.services import audit
from routing.models import AliasDeployment, Deployment, ModelAlias

MAX_OUTPUT_CHARS = 100_000
MAX_VARIABLES_CHARS = 200_000
MAX_TOKENS = 10_000_000
MAX_LATENCY_MS = 3_600_000


def deployment_for(alias: str, deployment: Any) -> Deployment | None:
    """The deployment that answered, when the page names one of the alias's; else the alias's first."""
    routes = AliasDeployment.objects.filter(alias__name=alias).select_related("deployment").order_by("priority", "id")
    if isinstance(deployment, str) and deployment:
        named = routes.filter(deployment__name=deployment[:200]).first()
        if named is not None:
            return named.deployment
    first = routes.first()
    return first.deployment if first else None


def price_of(deployment: Deployment) -> ModelPrice:
    return ModelPrice(
        input_per_million=deployment.input_per_1m,
        output_per_million=deployment.output_per_1m,
        cached_input_per_million=deployment.cached_input_per_1m,
    )


def _count(usage: dict, name: str) -> int:
    value = usage.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS:
        raise PromptInvalid(f"usage.{name} is a whole number of tokens", param=f"usage.{name}")
    return value


def cost_of_run(*, alias: str, deployment: Any, usage: Any) -> Decimal | None:
    """What the run cost at the catalogue's prices; None when the stream reported no usage."""
    if not usage:
        return None
    if not isinstance(usage, dict):
        raise PromptInvalid("usage is an object of token counts", param="usage")
    answered_by = deployment_for(alias, deployment)
    if answered_by is None:
        return None
    details = usage.get("prompt_tokens_details") or {}
    cached = _count(details, "cached_tokens") if isinstance(details, dict) else 0
    tokens = TokenUsage(
        prompt_tokens=_count(usage, "prompt_tokens"),
        completion_tokens=_count(usage, "completion_tokens"),
        cached_tokens=cached,
    )
    return cost_of(tokens, price_of(answered_by))


@transaction.atomic
def keep_example(
    version: PromptVersion,
    *,
    actor,
    alias: Any,
    variables: Any,
    output: Any,
    usage: Any = None,
    deployment: Any = None,
    latency_ms: Any = None,
) -> PromptExample:
    """Keep a run of `version` as its example. Written by those who may change the template."""
    template = version.template
    if not roles.can_manage_team(actor, template.team):
        raise NotAllowed("only the team's owners and the tenant's admins keep examples of its prompts")
    if not isinstance(alias, str) or not ModelAlias.objects.filter(name=alias[:100]).exists():
        raise PromptInvalid("the run's alias is not in the catalogue", param="alias")
    if not isinstance(variables, dict) or len(repr(variables)) > MAX_VARIABLES_CHARS:
        raise PromptInvalid("variables is an object of the values the run was given", param="variables")
    if not isinstance(output, str) or len(output) > MAX_OUTPUT_CHARS:
        raise PromptInvalid(f"output is text of at most {MAX_OUTPUT_CHARS} characters", param="output")
    if latency_ms is not None and (
        isinstance(latency_ms, bool) or not isinstance(latency_ms, int | float) or not 0 <= latency_ms <= MAX_LATENCY_MS
    ):
        raise PromptInvalid("latency_ms is a number of milliseconds", param="latency_ms")
    example = PromptExample.objects.create(
        version=version,
        variables=variables,
        alias=alias,
        output=output,
        cost_usd=cost_of_run(alias=alias, deployment=deployment, usage=usage),
        latency_ms=round(latency_ms) if latency_ms is not None else None,
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    audit.record(
        tenant=template.tenant,
        actor=actor,
        action="prompt.example_kept",
        target=template,
        details={"slug": template.slug, "version": version.number, "alias": alias, "example": example.pk},
    )
    return example


def examples_of(template) -> list[PromptExample]:
    return list(PromptExample.objects.filter(version__template=template).select_related("version", "created_by")[:50])
