"""Who may do what through /api/v1: every role against every object and action, one cell per test.

Cells read: a status code, or LISTED / HIDDEN for a list that answers 200 with or without the object. Every
object belongs to tenant Acme, except the model catalogue and the platform product; `other_admin` administers
another tenant and must get 404 for each guessed Acme id (400 when the id is in a request body), never 403.
`other_team_owner` owns another team of Acme: it sees the tenant, the catalogue and shared prompts, nothing of
the team's own.
"""

from dataclasses import dataclass

import pytest

from portal import services
from portal.models import APIKey, AuditLogEntry, Membership, Subscription
from portal.prompts import services as prompt_services
from tests.factories import DeploymentFactory, ProviderFactory, TeamFactory, TenantFactory, make_alias
from tests.portal.factories import MembershipFactory, ProductFactory, SubscriptionFactory, UserFactory, token_client
from tests.prompts.factories import make_prompt

pytestmark = pytest.mark.django_db
Role = Membership.Role
Status = Subscription.Status

ROLES = (
    "anonymous",
    "member",
    "team_owner",
    "other_team_owner",
    "tenant_admin",
    "finance",
    "platform_admin",
    "other_admin",
)
LISTED, HIDDEN = "listed", "hidden"


@dataclass
class World:
    users: dict
    tenant: object
    team: object
    product: object
    platform_product: object
    subscription: object
    api_key: APIKey
    audit_entry: AuditLogEntry
    provider: object
    deployment: object
    alias: object
    prompt: object  # the team's, not shared: versions 1 and 2, prod moved from 1 to 2, a draft past 2
    shared_prompt: object  # the team's, shared with the tenant: version 1, a draft past it


def build_world(subscription_status: str) -> World:
    tenant = TenantFactory(name="Acme")
    team = TeamFactory(tenant=tenant)
    other_team = TeamFactory(tenant=tenant)
    other_tenant = TenantFactory(name="Globex")
    TeamFactory(tenant=other_tenant)
    users = {
        "anonymous": None,
        "member": MembershipFactory(team=team, role=Role.MEMBER).user,
        "team_owner": MembershipFactory(team=team, role=Role.TEAM_OWNER).user,
        "other_team_owner": MembershipFactory(team=other_team, role=Role.TEAM_OWNER).user,
        "tenant_admin": MembershipFactory(team=None, tenant=tenant, role=Role.TENANT_ADMIN).user,
        "finance": MembershipFactory(team=None, tenant=tenant, role=Role.FINANCE).user,
        "platform_admin": UserFactory(is_superuser=True, is_staff=True),
        "other_admin": MembershipFactory(team=None, tenant=other_tenant, role=Role.TENANT_ADMIN).user,
    }
    provider = ProviderFactory()
    deployment = DeploymentFactory(provider=provider)
    alias = make_alias("mini", deployment)
    product = ProductFactory(tenant=tenant, aliases=[alias])
    issued = services.issue_api_key(team=team, name="ci", source=APIKey.Source.PORTAL)
    audit_entry = AuditLogEntry.objects.get(action="api_key.created")
    return World(
        users=users,
        tenant=tenant,
        team=team,
        product=product,
        platform_product=ProductFactory(tenant=None, aliases=[alias]),
        subscription=SubscriptionFactory(team=team, product=product, status=subscription_status),
        api_key=issued.api_key,
        audit_entry=audit_entry,
        provider=provider,
        deployment=deployment,
        alias=alias,
        prompt=_published_prompt(team, users["team_owner"]),
        shared_prompt=_shared_prompt(team, users["team_owner"]),
    )


def _published_prompt(team, owner):
    prompt = make_prompt(team=team, owner=owner, alias="mini")
    prompt_services.create_version(prompt, actor=owner)
    prompt_services.update_draft(prompt, actor=owner, description="second")
    prompt_services.update_draft(prompt, actor=owner, parameters={"temperature": 0.5})
    prompt_services.create_version(prompt, actor=owner)
    prompt_services.publish(prompt, actor=owner, environment="prod", version=1)
    prompt_services.publish(prompt, actor=owner, environment="prod", version=2)
    prompt_services.update_draft(prompt, actor=owner, parameters={"temperature": 0.7})
    return prompt


def _shared_prompt(team, owner):
    prompt = make_prompt(team=team, owner=owner, alias="mini", slug="shared", is_shared=True)
    prompt_services.create_version(prompt, actor=owner)
    prompt_services.update_draft(prompt, actor=owner, parameters={"temperature": 0.7})
    return prompt


# --- Actions: (client, world) -> response ---------------------------------------------------------------------


def get(path):
    return lambda client, w: client.get(path(w))


def post(path, body=lambda w: {}):
    return lambda client, w: client.post(path(w), body(w), format="json")


def patch(path, body):
    return lambda client, w: client.patch(path(w), body(w), format="json")


ACTIONS = {
    ("tenant", "list"): (get(lambda w: "/api/v1/tenants/"), lambda w: w.tenant.pk),
    ("tenant", "retrieve"): (get(lambda w: f"/api/v1/tenants/{w.tenant.pk}"), None),
    ("tenant", "create"): (post(lambda w: "/api/v1/tenants", lambda w: {"name": "Initech"}), None),
    ("team", "list"): (get(lambda w: "/api/v1/teams/"), lambda w: w.team.pk),
    ("team", "retrieve"): (get(lambda w: f"/api/v1/teams/{w.team.pk}/"), None),
    ("team", "create"): (post(lambda w: "/api/v1/teams", lambda w: {"tenant": w.tenant.pk, "name": "Ops"}), None),
    ("members", "list"): (get(lambda w: f"/api/v1/teams/{w.team.pk}/members"), None),
    ("members", "invite"): (
        post(lambda w: f"/api/v1/teams/{w.team.pk}/members/", lambda w: {"email": "new@acme.test", "role": "member"}),
        None,
    ),
    ("team", "change limits"): (patch(lambda w: f"/api/v1/teams/{w.team.pk}/", lambda w: {"rpm_limit": 100}), None),
    ("team", "change residency"): (
        patch(lambda w: f"/api/v1/teams/{w.team.pk}", lambda w: {"allowed_regions": ["eu"], "required_tags": []}),
        None,
    ),
    ("members", "list invitations"): (get(lambda w: f"/api/v1/teams/{w.team.pk}/members/invitations"), None),
    ("product", "list"): (get(lambda w: "/api/v1/products"), lambda w: w.product.pk),
    ("product", "retrieve"): (get(lambda w: f"/api/v1/products/{w.product.pk}"), None),
    ("product", "create for the tenant"): (
        post(lambda w: "/api/v1/products/", lambda w: {"tenant": w.tenant.pk, "name": "Big", "aliases": ["mini"]}),
        None,
    ),
    ("product", "create without a tenant"): (
        post(lambda w: "/api/v1/products/", lambda w: {"name": "Big", "aliases": ["mini"]}),
        None,
    ),
    ("subscription", "list"): (get(lambda w: "/api/v1/subscriptions/"), lambda w: w.subscription.pk),
    ("subscription", "retrieve"): (get(lambda w: f"/api/v1/subscriptions/{w.subscription.pk}"), None),
    ("subscription", "create"): (
        post(
            lambda w: "/api/v1/subscriptions",
            lambda w: {"team": w.team.pk, "product": w.platform_product.pk, "purpose": "support bot"},
        ),
        None,
    ),
    ("subscription", "change limits"): (
        patch(lambda w: f"/api/v1/subscriptions/{w.subscription.pk}", lambda w: {"rpm_limit": 100}),
        None,
    ),
    ("subscription", "approve"): (post(lambda w: f"/api/v1/subscriptions/{w.subscription.pk}/approve"), None),
    ("subscription", "reject"): (post(lambda w: f"/api/v1/subscriptions/{w.subscription.pk}/reject/"), None),
    ("subscription", "suspend"): (post(lambda w: f"/api/v1/subscriptions/{w.subscription.pk}/suspend"), None),
    ("subscription", "resume"): (post(lambda w: f"/api/v1/subscriptions/{w.subscription.pk}/resume/"), None),
    ("key", "list"): (get(lambda w: "/api/v1/keys"), lambda w: w.api_key.pk),
    ("key", "retrieve"): (get(lambda w: f"/api/v1/keys/{w.api_key.pk}"), None),
    ("key", "create"): (post(lambda w: "/api/v1/keys/", lambda w: {"team": w.team.pk, "name": "deploy"}), None),
    ("key", "revoke"): (post(lambda w: f"/api/v1/keys/{w.api_key.pk}/revoke"), None),
    ("key", "rotate"): (post(lambda w: f"/api/v1/keys/{w.api_key.pk}/rotate/", lambda w: {"grace_seconds": 60}), None),
    ("audit log", "list"): (get(lambda w: "/api/v1/audit-log/"), lambda w: w.audit_entry.pk),
    ("audit log", "retrieve"): (get(lambda w: f"/api/v1/audit-log/{w.audit_entry.pk}"), None),
    ("provider", "list"): (get(lambda w: "/api/v1/catalogue/providers/"), lambda w: w.provider.pk),
    ("provider", "retrieve"): (get(lambda w: f"/api/v1/catalogue/providers/{w.provider.pk}"), None),
    ("provider", "create"): (
        post(
            lambda w: "/api/v1/catalogue/providers",
            lambda w: {"name": "extra", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-x"},
        ),
        None,
    ),
    ("provider", "update"): (
        patch(lambda w: f"/api/v1/catalogue/providers/{w.provider.pk}/", lambda w: {"timeout_s": 30}),
        None,
    ),
    ("deployment", "list"): (get(lambda w: "/api/v1/catalogue/deployments"), lambda w: w.deployment.pk),
    ("deployment", "create"): (
        post(
            lambda w: "/api/v1/catalogue/deployments/",
            lambda w: {
                "name": "extra",
                "provider": w.provider.name,
                "model": "m",
                "input_per_1m": "1",
                "output_per_1m": "2",
            },
        ),
        None,
    ),
    ("alias", "list"): (get(lambda w: "/api/v1/catalogue/aliases"), lambda w: w.alias.pk),
    ("alias", "update"): (
        patch(lambda w: f"/api/v1/catalogue/aliases/{w.alias.pk}", lambda w: {"description": "the small one"}),
        None,
    ),
    **{
        (kind, action): call
        for kind, prompt in (("prompt", lambda w: w.prompt), ("shared prompt", lambda w: w.shared_prompt))
        for action, call in {
            "list": (get(lambda w: "/api/v1/prompts/"), lambda w, p=prompt: p(w).pk),
            "retrieve": (get(lambda w, p=prompt: f"/api/v1/prompts/{p(w).pk}"), None),
            "change the draft": (
                patch(lambda w, p=prompt: f"/api/v1/prompts/{p(w).pk}/", lambda w: {"description": "new"}),
                None,
            ),
            "create a version": (
                post(lambda w, p=prompt: f"/api/v1/prompts/{p(w).pk}/versions", lambda w: {"message": "m"}),
                None,
            ),
            "list versions": (get(lambda w, p=prompt: f"/api/v1/prompts/{p(w).pk}/versions/"), None),
            "retrieve a version": (get(lambda w, p=prompt: f"/api/v1/prompts/{p(w).pk}/versions/1"), None),
            "publish": (
                post(
                    lambda w, p=prompt: f"/api/v1/prompts/{p(w).pk}/publish",
                    lambda w: {"environment": "staging", "version": 1},
                ),
                None,
            ),
            "render": (
                post(
                    lambda w, p=prompt: f"/api/v1/prompts/{p(w).pk}/render/",
                    lambda w: {"variables": {"ticker": "X"}, "version": 1},
                ),
                None,
            ),
        }.items()
    },
    ("prompt", "create"): (
        post(
            lambda w: "/api/v1/prompts/",
            lambda w: {
                "slug": "new",
                "name": "New",
                "team": w.team.pk,
                "alias": "mini",
                "messages": [{"role": "user", "content": "Hello {{name}}"}],
                "variables": {"name": {"type": "string"}},
            },
        ),
        None,
    ),
    ("prompt", "bundle in a product"): (
        patch(lambda w: f"/api/v1/prompts/{w.prompt.pk}", lambda w: {"products": [w.product.pk]}),
        None,
    ),
    ("prompt", "split"): (
        post(
            lambda w: f"/api/v1/prompts/{w.prompt.pk}/publish/",
            lambda w: {"environment": "staging", "split": {"1": 50, "2": 50}},
        ),
        None,
    ),
    ("prompt", "roll back"): (
        post(lambda w: f"/api/v1/prompts/{w.prompt.pk}/rollback", lambda w: {"environment": "prod"}),
        None,
    ),
}

# Expected answers; columns in ROLES order:
#   anonymous, member, team_owner, other_team_owner, tenant_admin, finance, platform_admin, other_admin
L, H = LISTED, HIDDEN
MATRIX = {
    ("tenant", "list"): (401, L, L, L, L, L, L, H),
    ("tenant", "retrieve"): (401, 200, 200, 200, 200, 200, 200, 404),
    ("tenant", "create"): (401, 201, 201, 201, 201, 201, 201, 201),
    ("team", "list"): (401, L, L, H, L, L, L, H),
    ("team", "retrieve"): (401, 200, 200, 404, 200, 200, 200, 404),
    ("team", "create"): (401, 403, 403, 403, 201, 403, 201, 400),
    ("team", "change limits"): (401, 403, 403, 404, 200, 403, 200, 404),
    ("team", "change residency"): (401, 403, 200, 404, 200, 403, 200, 404),
    ("members", "list"): (401, 200, 200, 404, 200, 200, 200, 404),
    ("members", "invite"): (401, 403, 201, 404, 201, 403, 201, 404),
    ("members", "list invitations"): (401, 403, 200, 404, 200, 403, 200, 404),
    ("product", "list"): (401, L, L, L, L, L, L, H),
    ("product", "retrieve"): (401, 200, 200, 200, 200, 200, 200, 404),
    ("product", "create for the tenant"): (401, 403, 403, 403, 201, 403, 201, 400),
    # Without a tenant: a platform product for platform admins, the own tenant's for a tenant admin.
    ("product", "create without a tenant"): (401, 403, 403, 403, 201, 403, 201, 201),
    ("subscription", "list"): (401, L, L, H, L, L, L, H),
    ("subscription", "retrieve"): (401, 200, 200, 404, 200, 200, 200, 404),
    ("subscription", "create"): (401, 403, 201, 400, 201, 403, 201, 400),
    ("subscription", "change limits"): (401, 403, 403, 404, 200, 403, 200, 404),
    ("subscription", "approve"): (401, 403, 403, 404, 200, 403, 200, 404),
    ("subscription", "reject"): (401, 403, 403, 404, 200, 403, 200, 404),
    ("subscription", "suspend"): (401, 403, 403, 404, 200, 403, 200, 404),
    ("subscription", "resume"): (401, 403, 403, 404, 200, 403, 200, 404),
    ("key", "list"): (401, L, L, H, L, L, L, H),
    ("key", "retrieve"): (401, 200, 200, 404, 200, 200, 200, 404),
    ("key", "create"): (401, 403, 201, 400, 201, 403, 201, 400),
    ("key", "revoke"): (401, 403, 200, 404, 200, 403, 200, 404),
    ("key", "rotate"): (401, 403, 201, 404, 201, 403, 201, 404),
    # Audit log: 403 for whoever administers no tenant; another tenant's admin sees only their own entries.
    ("audit log", "list"): (401, 403, 403, 403, L, 403, L, H),
    ("audit log", "retrieve"): (401, 403, 403, 403, 200, 403, 200, 404),
    ("provider", "list"): (401, L, L, L, L, L, L, L),
    ("provider", "retrieve"): (401, 200, 200, 200, 200, 200, 200, 200),
    ("provider", "create"): (401, 403, 403, 403, 403, 403, 201, 403),
    ("provider", "update"): (401, 403, 403, 403, 403, 403, 200, 403),
    ("deployment", "list"): (401, L, L, L, L, L, L, L),
    ("deployment", "create"): (401, 403, 403, 403, 403, 403, 201, 403),
    ("alias", "list"): (401, L, L, L, L, L, L, L),
    ("alias", "update"): (401, 403, 403, 403, 403, 403, 200, 403),
    # Prompts: read by the team (any role) and the tenant's admins and finance, a shared one by every team of
    # the tenant; written by the team's owners and the tenant's admins; bundled in a product by tenant admins.
    ("prompt", "list"): (401, L, L, H, L, L, L, H),
    ("prompt", "retrieve"): (401, 200, 200, 404, 200, 200, 200, 404),
    ("prompt", "create"): (401, 403, 201, 400, 201, 403, 201, 400),
    ("prompt", "change the draft"): (401, 403, 200, 404, 200, 403, 200, 404),
    ("prompt", "bundle in a product"): (401, 403, 403, 404, 200, 403, 200, 404),
    ("prompt", "create a version"): (401, 403, 201, 404, 201, 403, 201, 404),
    ("prompt", "list versions"): (401, 200, 200, 404, 200, 200, 200, 404),
    ("prompt", "retrieve a version"): (401, 200, 200, 404, 200, 200, 200, 404),
    ("prompt", "publish"): (401, 403, 200, 404, 200, 403, 200, 404),
    ("prompt", "split"): (401, 403, 200, 404, 200, 403, 200, 404),
    ("prompt", "roll back"): (401, 403, 200, 404, 200, 403, 200, 404),
    ("prompt", "render"): (401, 200, 200, 404, 200, 200, 200, 404),
    ("shared prompt", "list"): (401, L, L, L, L, L, L, H),
    ("shared prompt", "retrieve"): (401, 200, 200, 200, 200, 200, 200, 404),
    ("shared prompt", "change the draft"): (401, 403, 200, 403, 200, 403, 200, 404),
    ("shared prompt", "create a version"): (401, 403, 201, 403, 201, 403, 201, 404),
    ("shared prompt", "list versions"): (401, 200, 200, 200, 200, 200, 200, 404),
    ("shared prompt", "retrieve a version"): (401, 200, 200, 200, 200, 200, 200, 404),
    ("shared prompt", "publish"): (401, 403, 200, 403, 200, 403, 200, 404),
    ("shared prompt", "render"): (401, 200, 200, 200, 200, 200, 200, 404),
}

# The subscription's status before the action: each decision is tried from the one state it is allowed in,
# so a refusal can only come from the role.
STARTING_STATUS = {"suspend": Status.ACTIVE, "resume": Status.SUSPENDED}

CELLS = [
    (obj, action, role, expected)
    for (obj, action), row in MATRIX.items()
    for role, expected in zip(ROLES, row, strict=True)
]


def test_the_table_has_a_row_for_every_action_and_a_cell_for_every_role():
    assert set(MATRIX) == set(ACTIONS)
    assert all(len(row) == len(ROLES) for row in MATRIX.values())


# Every prompt operation the schema documents, and the rows that try it: a new one without a row fails below.
PROMPT_OPERATIONS = {
    ("get", "/api/v1/prompts/"): ("prompt", "list"),
    ("post", "/api/v1/prompts/"): ("prompt", "create"),
    ("get", "/api/v1/prompts/{id}/"): ("prompt", "retrieve"),
    ("patch", "/api/v1/prompts/{id}/"): ("prompt", "change the draft"),
    ("get", "/api/v1/prompts/{id}/versions/"): ("prompt", "list versions"),
    ("post", "/api/v1/prompts/{id}/versions/"): ("prompt", "create a version"),
    ("get", "/api/v1/prompts/{id}/versions/{number}/"): ("prompt", "retrieve a version"),
    ("post", "/api/v1/prompts/{id}/publish/"): ("prompt", "publish"),
    ("post", "/api/v1/prompts/{id}/rollback/"): ("prompt", "roll back"),
    ("post", "/api/v1/prompts/{id}/render/"): ("prompt", "render"),
}


def test_every_prompt_operation_of_the_schema_has_a_row():
    schema = token_client(None).get("/api/v1/schema/?format=json").json()
    documented = {
        (method, path)
        for path, item in schema["paths"].items()
        if path.startswith("/api/v1/prompts")
        for method in item
        if method in ("get", "post", "patch", "put", "delete")
    }

    assert documented == set(PROMPT_OPERATIONS)
    assert set(PROMPT_OPERATIONS.values()) <= set(MATRIX)


@pytest.mark.parametrize(("obj", "action", "role", "expected"), CELLS, ids=[" ".join(c[:3]) for c in CELLS])
def test_cell(obj, action, role, expected):
    world = build_world(STARTING_STATUS.get(action, Status.PENDING))
    call, listed_id = ACTIONS[(obj, action)]

    response = call(token_client(world.users[role]), world)

    if expected in (LISTED, HIDDEN):
        assert response.status_code == 200, response.content
        ids = [row["id"] for row in response.json()["results"]]
        assert (listed_id(world) in ids) == (expected == LISTED), ids
    else:
        assert response.status_code == expected, response.content
    error_codes = {401: "not_authenticated", 403: "permission_denied", 404: "not_found"}
    if expected in error_codes:
        assert response.json()["code"] == error_codes[expected]
    if role == "anonymous":
        assert response["WWW-Authenticate"] == "Token"
