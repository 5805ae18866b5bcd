"""schemathesis against /api/v1/schema/, in-process through Django's WSGI handler, with every check it has:
no 5xx, only documented statuses, content types and headers, bodies that match the schema, invalid data
refused and valid data accepted. One test per operation and per caller (a platform admin, a team member),
bounded in examples; hypothesis is derandomized, so a run is the same run every time.

Every id the schema can name exists: each test seeds a tenant with teams, products, subscriptions, keys,
budgets and catalogue entries, and generated path ids are mapped onto those (or left as they are, to probe
ids that name nothing). Writes (revoke, approve, rotate…) change that world as the test goes; there is enough
of it that every operation keeps something to act on.
"""

import re

import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, settings
from rest_framework.authtoken.models import Token
from schemathesis.specs.openapi.checks import positive_data_acceptance

from billing.models import Budget
from portal import services
from portal.models import APIKey, AuditLogEntry, Membership, Subscription
from portal.prompts import services as prompt_services
from tests.factories import DeploymentFactory, ProviderFactory, TeamFactory, TenantFactory, make_alias
from tests.portal.factories import MembershipFactory, ProductFactory, SubscriptionFactory, UserFactory
from tests.prompts.factories import make_prompt

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(120)]

schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", WSGIHandler())

# Fields whose valid-looking value can still name nothing, or something the caller may not use: a 400 on them
# for schema-valid data is the API being right, not the schema lying.
REFERENCES = {
    "tenant",
    "team",
    "product",
    "subscriptions",
    "aliases",
    "provider",
    "deployments",
    "target",
    "token",
    "downgrade_alias",
    "routing",  # its weights name the alias's deployments, its fallbacks other aliases
    "alias",  # a prompt's: a catalogue alias
    "products",
    "version",  # a prompt's version that may not exist (yet)
    "environment",  # a tenant's, and one rolled back needs an earlier publication
}
# Rules no schema can state: a date that has passed, a URL Django's validator finds stranger than the `uri`
# format does, a base URL the SSRF rules refuse, one of two fields required (limit_usd or limit_tokens; api_key
# or api_key_env), rules across fields (`since` before `until`).
DOMAIN_RULES = {
    "expires_at",
    "webhook_url",
    "base_url",
    "limit_usd",
    "api_key",
    "since",
    "non_field_errors",
    # Prompts (portal/prompts/services.py): a `{{` that is no variable, a spec for a variable the text does not
    # use, a default of the wrong type, a slug taken, a split summing to other than 100, a draft already frozen.
    "messages",
    "variables",
    "slug",
    "split",
    "draft",
    "output_schema",
    "parameters",
}
# portal.errors.InvalidInput, and a wrong email or password (400, as DRF's own token view answers).
DOMAIN_CODES = {"invalid", "invalid_credentials", "email_not_verified"}

# Which seeded rows a path id is mapped onto, by the collection it follows.
COLLECTIONS = {
    "tenants": "tenants",
    "teams": "teams",
    "products": "products",
    "subscriptions": "subscriptions",
    "keys": "keys",
    "audit-log": "audit_log",
    "budgets": "budgets",
    "providers": "providers",
    "deployments": "deployments",
    "aliases": "aliases",
    "prompts": "prompts",
}
seeded_ids: dict[str, list[int]] = {}
requests_made = {"count": 0}


@schema.hook
def after_call(context, case, response) -> None:
    requests_made["count"] += 1


@pytest.fixture(scope="module", autouse=True)
def report_requests_made():
    yield
    print(f"\nschemathesis made {requests_made['count']} requests to /api/v1")  # visible with -s


@schema.hook
def map_path_parameters(context, path_parameters: dict | None) -> dict | None:
    if not path_parameters:
        return path_parameters
    segments = context.operation.path.strip("/").split("/")
    mapped = dict(path_parameters)
    for name, value in path_parameters.items():
        position = segments.index(f"{{{name}}}")
        ids = seeded_ids.get(COLLECTIONS.get(segments[position - 1], ""), [])
        if isinstance(value, int) and not isinstance(value, bool) and ids:
            # One value in len(ids) + 1 keeps what hypothesis drew: an id that (almost surely) names nothing.
            slot = value % (len(ids) + 1)
            mapped[name] = ids[slot] if slot < len(ids) else value
    return mapped


def tolerant_positive_data_acceptance(ctx, response, case):
    """positive_data_acceptance, except for a 400 that is only about REFERENCES and DOMAIN_RULES."""
    if response.status_code == 400 and _only_about(response, REFERENCES | DOMAIN_RULES):
        return None
    return positive_data_acceptance(ctx, response, case)


def _only_about(response, fields: set[str]) -> bool:
    body = response.json()
    if "param" in body:  # a domain error about one field, as a path: `messages[0].content`, `variables.ticker`
        return re.split(r"[.\[]", body["param"])[0] in fields
    if set(body) <= {"detail", "code"}:
        return body.get("code") in DOMAIN_CODES
    return all(name in fields or _is_taken(messages) for name, messages in body.items())


def _is_taken(messages) -> bool:
    # DRF's UniqueValidator: "tenant with this name already exists."
    return isinstance(messages, list) and all(str(message).endswith("already exists.") for message in messages)


@pytest.fixture(autouse=True)
def one_connection_for_all_requests():
    # Django's test client does the same: WSGIHandler closes the connection after each request, which
    # would end the test's transaction (and, on SQLite, the database it is in).
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def build_world() -> dict[str, str]:
    """A tenant with enough of everything to fuzz; the tokens of a platform admin and of a team member."""
    tenant = TenantFactory(name="Acme")
    teams = [TeamFactory(tenant=tenant) for _ in range(3)]
    admin = UserFactory(is_superuser=True, is_staff=True)
    member = MembershipFactory(team=teams[0], role=Membership.Role.MEMBER).user
    MembershipFactory(team=teams[0], role=Membership.Role.TEAM_OWNER, user=admin)
    MembershipFactory(team=None, tenant=tenant, role=Membership.Role.TENANT_ADMIN)
    deployments = [DeploymentFactory(provider=ProviderFactory()) for _ in range(3)]
    aliases = [make_alias(f"alias-{n}", deployment) for n, deployment in enumerate(deployments)]
    products = [ProductFactory(tenant=tenant, aliases=[alias]) for alias in aliases]
    subscriptions = [
        SubscriptionFactory(team=team, product=product, status=status)
        for team in teams
        for product, status in zip(products, Subscription.Status.values, strict=False)
    ]
    keys = [
        services.issue_api_key(team=team, name=f"key {n}", source=APIKey.Source.PORTAL).api_key
        for team in teams
        for n in range(4)
    ]
    budgets = [
        Budget.objects.create(tenant=tenant, scope=Budget.Scope.TEAM, target_id=team.pk, period="monthly", limit_usd=5)
        for team in teams
    ]
    services.invite_member(team=teams[0], invited_by=admin, email="new@example.test", role=Membership.Role.MEMBER)
    prompts = [make_prompt(team=team, owner=admin, alias=aliases[0].name, slug=f"prompt-{team.pk}") for team in teams]
    for prompt in prompts:
        prompt_services.create_version(prompt, actor=admin)
        prompt_services.publish(prompt, actor=admin, environment="prod", version=1)
    seeded_ids.clear()
    seeded_ids.update(
        tenants=[tenant.pk],
        teams=[team.pk for team in teams],
        products=[product.pk for product in products],
        subscriptions=[subscription.pk for subscription in subscriptions],
        keys=[key.pk for key in keys],
        audit_log=list(AuditLogEntry.objects.values_list("pk", flat=True)[:5]),
        budgets=[budget.pk for budget in budgets],
        providers=[deployment.provider.pk for deployment in deployments],
        deployments=[deployment.pk for deployment in deployments],
        aliases=[alias.pk for alias in aliases],
        prompts=[prompt.pk for prompt in prompts],
    )
    return {
        role: Token.objects.get_or_create(user=user)[0].key for role, user in (("admin", admin), ("member", member))
    }


@pytest.fixture(params=["admin", "member"])
def token(request) -> str:
    return build_world()[request.param]


@schema.parametrize()
@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_the_rest_api_answers_as_its_schema_says(case, token):
    case.call_and_validate(
        headers={"Authorization": f"Token {token}"},
        excluded_checks=[positive_data_acceptance],
        additional_checks=[tolerant_positive_data_acceptance],
    )
