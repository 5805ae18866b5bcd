"""Who may do what through /api/v1: every role against every object and action, one cell per test.

Cells read: a status code, or LISTED / HIDDEN for a list that answers 200 with or without the object. Every
object belongs to tenant Acme, except the model catalogue and the platform product; `other_admin` administers
another tenant and must get 404 for each guessed Acme id (400 when the id is in a request body), never 403.
"""

from dataclasses import dataclass

import pytest

from portal import services
from portal.models import APIKey, AuditLogEntry, Membership, Subscription
from tests.factories import DeploymentFactory, ProviderFactory, TeamFactory, TenantFactory, make_alias
from tests.portal.factories import MembershipFactory, ProductFactory, SubscriptionFactory, UserFactory, token_client

pytestmark = pytest.mark.django_db
Role = Membership.Role
Status = Subscription.Status

ROLES = ("anonymous", "member", "team_owner", "tenant_admin", "finance", "platform_admin", "other_admin")
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


def build_world(subscription_status: str) -> World:
    tenant = TenantFactory(name="Acme")
    team = TeamFactory(tenant=tenant)
    other_tenant = TenantFactory(name="Globex")
    TeamFactory(tenant=other_tenant)
    users = {
        "anonymous": None,
        "member": MembershipFactory(team=team, role=Role.MEMBER).user,
        "team_owner": MembershipFactory(team=team, role=Role.TEAM_OWNER).user,
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
    return World(
        users=users,
        tenant=tenant,
        team=team,
        product=product,
        platform_product=ProductFactory(tenant=None, aliases=[alias]),
        subscription=SubscriptionFactory(team=team, product=product, status=subscription_status),
        api_key=issued.api_key,
        audit_entry=AuditLogEntry.objects.get(action="api_key.created"),
        provider=provider,
        deployment=deployment,
        alias=alias,
    )


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
}

# Expected answers; columns in ROLES order:
#   anonymous, member, team_owner, tenant_admin, finance, platform_admin, other_admin
L, H = LISTED, HIDDEN
MATRIX = {
    ("tenant", "list"): (401, L, L, L, L, L, H),
    ("tenant", "retrieve"): (401, 200, 200, 200, 200, 200, 404),
    ("tenant", "create"): (401, 201, 201, 201, 201, 201, 201),
    ("team", "list"): (401, L, L, L, L, L, H),
    ("team", "retrieve"): (401, 200, 200, 200, 200, 200, 404),
    ("team", "create"): (401, 403, 403, 201, 403, 201, 400),
    ("team", "change limits"): (401, 403, 403, 200, 403, 200, 404),
    ("team", "change residency"): (401, 403, 200, 200, 403, 200, 404),
    ("members", "list"): (401, 200, 200, 200, 200, 200, 404),
    ("members", "invite"): (401, 403, 201, 201, 403, 201, 404),
    ("members", "list invitations"): (401, 403, 200, 200, 403, 200, 404),
    ("product", "list"): (401, L, L, L, L, L, H),
    ("product", "retrieve"): (401, 200, 200, 200, 200, 200, 404),
    ("product", "create for the tenant"): (401, 403, 403, 201, 403, 201, 400),
    # Without a tenant: a platform product for platform admins, the own tenant's for a tenant admin.
    ("product", "create without a tenant"): (401, 403, 403, 201, 403, 201, 201),
    ("subscription", "list"): (401, L, L, L, L, L, H),
    ("subscription", "retrieve"): (401, 200, 200, 200, 200, 200, 404),
    ("subscription", "create"): (401, 403, 201, 201, 403, 201, 400),
    ("subscription", "change limits"): (401, 403, 403, 200, 403, 200, 404),
    ("subscription", "approve"): (401, 403, 403, 200, 403, 200, 404),
    ("subscription", "reject"): (401, 403, 403, 200, 403, 200, 404),
    ("subscription", "suspend"): (401, 403, 403, 200, 403, 200, 404),
    ("subscription", "resume"): (401, 403, 403, 200, 403, 200, 404),
    ("key", "list"): (401, L, L, L, L, L, H),
    ("key", "retrieve"): (401, 200, 200, 200, 200, 200, 404),
    ("key", "create"): (401, 403, 201, 201, 403, 201, 400),
    ("key", "revoke"): (401, 403, 200, 200, 403, 200, 404),
    ("key", "rotate"): (401, 403, 201, 201, 403, 201, 404),
    # Audit log: 403 for whoever administers no tenant; another tenant's admin sees only their own entries.
    ("audit log", "list"): (401, 403, 403, L, 403, L, H),
    ("audit log", "retrieve"): (401, 403, 403, 200, 403, 200, 404),
    ("provider", "list"): (401, L, L, L, L, L, L),
    ("provider", "retrieve"): (401, 200, 200, 200, 200, 200, 200),
    ("provider", "create"): (401, 403, 403, 403, 403, 201, 403),
    ("provider", "update"): (401, 403, 403, 403, 403, 200, 403),
    ("deployment", "list"): (401, L, L, L, L, L, L),
    ("deployment", "create"): (401, 403, 403, 403, 403, 201, 403),
    ("alias", "list"): (401, L, L, L, L, L, L),
    ("alias", "update"): (401, 403, 403, 403, 403, 200, 403),
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
