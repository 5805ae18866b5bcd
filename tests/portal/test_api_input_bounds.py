"""Every string and number a client sends through /api/v1 is bounded before it reaches a row or a log line:
strings to their column's max_length (TextFields to TEXT_MAX_LENGTH), integers to their column's range,
money to DecimalField(20, 10) as a decimal string. Out of bounds answers 400 naming the field."""

import pytest

from billing.models import Budget
from portal.api.inputs import TEXT_MAX_LENGTH
from portal.models import Membership, Subscription
from tests.factories import DeploymentFactory, ProviderFactory, TeamFactory, make_alias
from tests.portal.factories import MembershipFactory, ProductFactory, SubscriptionFactory, UserFactory, token_client

pytestmark = pytest.mark.django_db

INT_COLUMN_MAX = 2**31 - 1  # PositiveIntegerField on PostgreSQL
BIGINT_MAX = 2**63 - 1
TOO_LONG_TEXT = "x" * (TEXT_MAX_LENGTH + 1)


@pytest.fixture
def team():
    return TeamFactory()


@pytest.fixture
def admin(team):
    return token_client(MembershipFactory(team=None, tenant=team.tenant, role=Membership.Role.TENANT_ADMIN).user)


@pytest.fixture
def root():
    return token_client(UserFactory(is_superuser=True, is_staff=True))


def refused(response, field: str) -> bool:
    return response.status_code == 400 and field in response.json()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x" * 201}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "a\x00b"}, "name"),
    ],
)
def test_a_tenant_name_is_bounded_and_not_blank(body, field):
    assert refused(token_client(UserFactory()).post("/api/v1/tenants/", body, format="json"), field)


def test_a_team_name_is_bounded(team, admin):
    assert refused(admin.post("/api/v1/teams/", {"tenant": team.tenant.pk, "name": "x" * 201}, format="json"), "name")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"description": TOO_LONG_TEXT}, "description"),
        ({"default_rpm": INT_COLUMN_MAX + 1}, "default_rpm"),
        ({"default_tpm": 0}, "default_tpm"),
        ({"monthly_budget_usd": "1" * 11}, "monthly_budget_usd"),
        ({"monthly_budget_usd": "-1"}, "monthly_budget_usd"),
        ({"monthly_budget_usd": 10.5}, "monthly_budget_usd"),  # money is a decimal string, never a float
        ({"monthly_budget_usd": "1e3"}, "monthly_budget_usd"),
    ],
)
def test_a_products_text_numbers_and_money_are_bounded(team, admin, change, field):
    assert refused(admin.post("/api/v1/products/", {"name": "Mini", **change}, format="json"), field)


def test_a_subscriptions_purpose_is_bounded(team):
    owner = token_client(MembershipFactory(team=team, role=Membership.Role.TEAM_OWNER).user)
    product = ProductFactory(tenant=team.tenant)

    response = owner.post(
        "/api/v1/subscriptions/", {"team": team.pk, "product": product.pk, "purpose": TOO_LONG_TEXT}, format="json"
    )

    assert refused(response, "purpose")


@pytest.mark.parametrize("action", ["approve", "reject", "suspend", "resume"])
def test_a_decisions_reason_is_bounded(team, admin, action):
    subscription = SubscriptionFactory(team=team, status=Subscription.Status.PENDING)

    response = admin.post(f"/api/v1/subscriptions/{subscription.pk}/{action}", {"reason": TOO_LONG_TEXT}, format="json")

    assert refused(response, "reason")
    subscription.refresh_from_db()
    assert subscription.reason == ""


def test_a_revocations_reason_is_bounded(team, admin):
    created = admin.post("/api/v1/keys/", {"team": team.pk, "name": "ci"}, format="json").json()

    response = admin.post(f"/api/v1/keys/{created['id']}/revoke", {"reason": TOO_LONG_TEXT}, format="json")

    assert refused(response, "reason")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x" * 201}, "name"),
        ({"rpm_limit": INT_COLUMN_MAX + 1}, "rpm_limit"),
        ({"tpm_limit": INT_COLUMN_MAX + 1}, "tpm_limit"),
    ],
)
def test_a_keys_name_and_limits_are_bounded(team, admin, body, field):
    assert refused(admin.post("/api/v1/keys/", {"team": team.pk, **body}, format="json"), field)


def test_an_invitation_token_is_bounded():
    response = token_client(UserFactory()).post("/api/v1/invitations/accept", {"token": "x" * 65}, format="json")

    assert refused(response, "token")


BUDGET = {"scope": "team", "period": "monthly", "limit_usd": "10"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"limit_usd": "0"}, "limit_usd"),
        ({"limit_usd": "0.0000000000"}, "limit_usd"),
        ({"limit_usd": "-5"}, "limit_usd"),
        ({"limit_usd": "1234567890"}, "limit_usd"),  # 10 digits before the point: SQLite would round it past (20, 10)
        ({"limit_usd": "1.00000000001"}, "limit_usd"),
        ({"limit_usd": 10}, "limit_usd"),
        ({"limit_tokens": 0}, "limit_tokens"),
        ({"limit_tokens": BIGINT_MAX + 1}, "limit_tokens"),
        ({"thresholds": list(range(1, 22))}, "thresholds"),
        ({"downgrade_alias": "x" * 151}, "downgrade_alias"),
    ],
)
def test_a_budgets_limits_are_bounded(team, admin, change, field):
    assert refused(admin.post("/api/v1/budgets/", {**BUDGET, "target": team.pk, **change}, format="json"), field)
    assert not Budget.objects.exists()


def test_a_budget_target_beyond_its_column_is_refused(admin):
    response = admin.post("/api/v1/budgets/", {**BUDGET, "target": INT_COLUMN_MAX + 1}, format="json")

    assert refused(response, "target")


def test_the_smallest_and_largest_budgets_in_dollars_are_accepted_and_read_back(team, admin):
    # The largest has 9 digits before the point: SQLite's float storage rounds it to 1000000000, still within
    # DecimalField(20, 10); with 10 digits it would round to 11 and every read of the row would fail.
    for limit in ("0.0000000001", "999999999.9999999999"):
        created = admin.post("/api/v1/budgets/", {**BUDGET, "target": team.pk, "limit_usd": limit}, format="json")
        assert created.status_code == 201, created.content

        read = admin.get(f"/api/v1/budgets/{created.json()['id']}")
        assert read.status_code == 200, read.content


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"timeout_s": 0}, "timeout_s"),
        ({"connect_timeout_s": -1}, "connect_timeout_s"),
        ({"timeout_s": 3601}, "timeout_s"),
        ({"api_key": "k" * 1001}, "api_key"),
        ({"api_key_env": "NOT AN ENV NAME"}, "api_key_env"),
    ],
)
def test_a_providers_timeouts_and_credentials_are_bounded(root, body, field):
    provider = {"name": "p", "kind": "openai", "base_url": "https://api.openai.com/v1", **body}

    assert refused(root.post("/api/v1/catalogue/providers/", provider, format="json"), field)


def test_an_alias_lists_a_bounded_number_of_deployments(root):
    deployment = DeploymentFactory(provider=ProviderFactory())
    make_alias("mini", deployment)

    response = root.post(
        "/api/v1/catalogue/aliases/", {"name": "big", "deployments": [deployment.name] * 51}, format="json"
    )

    assert refused(response, "deployments")
