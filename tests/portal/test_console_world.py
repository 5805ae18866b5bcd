"""The organisation the console tests run in. No tests here: each console test module builds it with
`build_world()` in its own `world` fixture.

Acme has the team Checkout, where each role is held by one user, and the team Search, where nobody of
Checkout is a member. Globex is another tenant with its own admin: nothing of Acme may leak to it.
"""

from dataclasses import dataclass, field

from portal import services
from portal.models import APIKey, Membership, Product, Subscription, Team, Tenant
from tests.factories import TeamFactory
from tests.portal.factories import MembershipFactory, ProductFactory, SubscriptionFactory, UserFactory

Role = Membership.Role
ROLES = ["member", "team_owner", "tenant_admin", "finance", "platform_admin", "other_tenant_admin"]


@dataclass
class World:
    tenant: Tenant
    team: Team
    other_team: Team
    rival_team: Team
    users: dict = field(default_factory=dict)
    chat: Product | None = None  # Checkout's request for it is pending
    embeddings: Product | None = None  # Checkout's subscription to it is active
    vision: Product | None = None  # nobody has asked for it yet
    pending: Subscription | None = None
    active: Subscription | None = None
    key: APIKey | None = None
    rival_subscription: Subscription | None = None
    rival_key: APIKey | None = None

    def user(self, role: str | None):
        return None if role in (None, "anonymous") else self.users[role]


def build_world() -> World:
    team = TeamFactory(name="Checkout", tenant__name="Acme")
    world = World(
        tenant=team.tenant,
        team=team,
        other_team=TeamFactory(name="Search", tenant=team.tenant),
        rival_team=TeamFactory(name="Rivals", tenant__name="Globex"),
    )
    acme = world.tenant
    world.users = {
        "member": MembershipFactory(team=team, role=Role.MEMBER, user__email="member@acme.test").user,
        "team_owner": MembershipFactory(team=team, role=Role.TEAM_OWNER, user__email="owner@acme.test").user,
        "tenant_admin": MembershipFactory(
            team=None, tenant=acme, role=Role.TENANT_ADMIN, user__email="admin@acme.test"
        ).user,
        "finance": MembershipFactory(team=None, tenant=acme, role=Role.FINANCE, user__email="finance@acme.test").user,
        "platform_admin": UserFactory(email="root@tollway.test", is_superuser=True, is_staff=True),
        "other_tenant_admin": MembershipFactory(
            team=None, tenant=world.rival_team.tenant, role=Role.TENANT_ADMIN, user__email="admin@globex.test"
        ).user,
    }
    world.chat = ProductFactory(name="Chat", tenant=acme)
    world.embeddings = ProductFactory(name="Embeddings", tenant=acme)
    world.vision = ProductFactory(name="Vision", tenant=acme)
    owner = world.users["team_owner"]
    world.pending = SubscriptionFactory(team=team, product=world.chat, requested_by=owner)
    world.active = SubscriptionFactory(team=team, product=world.embeddings, status=Subscription.Status.ACTIVE)
    world.key = services.issue_api_key(
        team=team, name="checkout prod", source=APIKey.Source.PORTAL, created_by=owner
    ).api_key
    rival_product = ProductFactory(name="Rival chat", tenant=world.rival_team.tenant)
    world.rival_subscription = SubscriptionFactory(team=world.rival_team, product=rival_product)
    world.rival_key = services.issue_api_key(team=world.rival_team, name="rival", source=APIKey.Source.PORTAL).api_key
    return world
