"""The console's authorisation matrix: every role against every page and action, with the status each
cell must answer. Outside their tenants users get 404 (ids cannot be probed); inside, a missing right is 403;
anonymous visitors are sent to sign in. A refused action must leave no trace in the audit log."""

import pytest
from django.urls import reverse

from billing.models import Budget
from portal.models import AuditLogEntry
from tests.portal.test_console_world import ROLES, build_world

ROLE_COLUMNS = ["anonymous", *ROLES]


@pytest.fixture
def world(db):
    return build_world()


def _team_page(w):
    return "get", reverse("console:team", args=[w.team.pk]), {}


def _approve(w):
    return "post", reverse("console:subscription-approve", args=[w.pending.pk]), {}


def _reject(w):
    return "post", reverse("console:subscription-reject", args=[w.pending.pk]), {"reason": "not this quarter"}


def _suspend(w):
    return "post", reverse("console:subscription-suspend", args=[w.active.pk]), {"reason": "budget"}


def _new_key_page(w):
    return "get", reverse("console:key-new", args=[w.team.pk]), {}


def _create_key(w):
    return "post", reverse("console:key-new", args=[w.team.pk]), {"name": "ci"}


def _revoke_key(w):
    return "post", reverse("console:key-revoke", args=[w.key.pk]), {}


def _rotate_key(w):
    return "post", reverse("console:key-rotate", args=[w.key.pk]), {"grace_s": "3600"}


def _subscribe_page(w):
    return "get", reverse("console:subscribe", args=[w.vision.pk]), {}


def _subscribe(w):
    return "post", reverse("console:subscribe", args=[w.vision.pk]), {"team": w.team.pk, "purpose": "image search"}


def _invite(w):
    return "post", reverse("console:team-invite", args=[w.team.pk]), {"email": "new@acme.test", "role": "member"}


def _subscription_page(w):
    return "get", reverse("console:subscription", args=[w.pending.pk]), {}


def _change_quota(w):
    url = reverse("console:subscription-quota", args=[w.active.pk])
    return "post", url, {"rpm_limit": "5", "tpm_limit": "", "monthly_budget_usd": ""}


def _acme_budget(w) -> Budget:
    return Budget.objects.create(tenant=w.tenant, scope="team", target_id=w.team.pk, period="daily", limit_usd=1)


def _budgets_page(w):
    return "get", reverse("console:budgets"), {}


def _new_budget_page(w):
    return "get", reverse("console:budget-new"), {}


def _create_budget(w):
    body = {"target": f"team:{w.team.pk}", "period": "monthly", "limit_usd": "5", "action": "block"}
    return "post", reverse("console:budget-new"), body


def _edit_budget_page(w):
    return "get", reverse("console:budget", args=[_acme_budget(w).pk]), {}


def _deactivate_budget(w):
    return "post", reverse("console:budget-deactivate", args=[_acme_budget(w).pk]), {}


#                  anonymous member owner admin finance platform other-tenant-admin
MATRIX = {
    _team_page: (302, 200, 200, 200, 200, 200, 404),
    _subscription_page: (302, 200, 200, 200, 200, 200, 404),
    _approve: (302, 403, 403, 302, 403, 302, 404),
    _reject: (302, 403, 403, 302, 403, 302, 404),
    _suspend: (302, 403, 403, 302, 403, 302, 404),
    _new_key_page: (302, 403, 200, 200, 403, 200, 404),
    _create_key: (302, 403, 200, 200, 403, 200, 404),
    _revoke_key: (302, 403, 302, 302, 403, 302, 404),
    _rotate_key: (302, 403, 200, 200, 403, 200, 404),
    _subscribe_page: (302, 403, 200, 200, 403, 200, 404),
    _subscribe: (302, 403, 302, 302, 403, 302, 404),
    _invite: (302, 403, 302, 302, 403, 302, 404),
    _change_quota: (302, 403, 403, 302, 403, 302, 404),
    _budgets_page: (302, 200, 200, 200, 200, 200, 200),
    _new_budget_page: (302, 403, 403, 200, 403, 200, 200),
    # Another tenant's admin is offered only their own targets: Acme's team is refused beside the field.
    _create_budget: (302, 403, 403, 302, 403, 302, 200),
    _edit_budget_page: (302, 403, 403, 200, 403, 200, 404),
    _deactivate_budget: (302, 403, 403, 302, 403, 302, 404),
}
CASES = [
    pytest.param(action, role, expected, id=f"{action.__name__.strip('_')}-{role}")
    for action, statuses in MATRIX.items()
    for role, expected in zip(ROLE_COLUMNS, statuses, strict=True)
]
WRITES = {_approve, _reject, _suspend, _create_key, _revoke_key, _rotate_key, _subscribe, _invite, _change_quota}
WRITES |= {_deactivate_budget}


@pytest.mark.parametrize(("action", "role", "expected"), CASES)
def test_each_role_gets_the_expected_answer_from_each_page_and_action(client, world, action, role, expected):
    user = world.user(role)
    if user is not None:
        client.force_login(user)
    method, url, data = action(world)
    audited_before = AuditLogEntry.objects.count()

    response = getattr(client, method)(url, data)

    assert response.status_code == expected
    if role == "anonymous":
        assert response.headers["location"].startswith(reverse("account_login") + "?next=")
    if action in WRITES:
        went_through = expected in (200, 302) and role != "anonymous"
        assert (AuditLogEntry.objects.count() > audited_before) is went_through


@pytest.mark.parametrize(
    ("role", "expected"),
    [("anonymous", 302), ("member", 403), ("team_owner", 403), ("finance", 403)]
    + [("tenant_admin", 200), ("platform_admin", 200), ("other_tenant_admin", 200)],
)
def test_the_approvals_queue_is_for_tenant_and_platform_admins_only(client, world, role, expected):
    user = world.user(role)
    if user is not None:
        client.force_login(user)

    response = client.get(reverse("console:approvals"))

    assert response.status_code == expected


def test_another_tenants_admin_sees_none_of_acmes_requests_in_their_queue(client, world):
    client.force_login(world.users["other_tenant_admin"])

    page = client.get(reverse("console:approvals")).content.decode()

    assert "Rivals" in page
    assert "Checkout" not in page and f"approve-{world.pending.pk}" not in page


@pytest.mark.parametrize(
    "url_of",
    [
        lambda w: reverse("console:team", args=[w.rival_team.pk]),
        lambda w: reverse("console:key-new", args=[w.rival_team.pk]),
        lambda w: reverse("console:subscription", args=[w.rival_subscription.pk]),
        lambda w: reverse("console:team", args=[999_999]),
    ],
    ids=["team", "new-key", "subscription", "no-such-team"],
)
def test_guessed_ids_of_another_tenant_are_not_found_even_for_a_tenant_admin(client, world, url_of):
    client.force_login(world.users["tenant_admin"])

    assert client.get(url_of(world)).status_code == 404


@pytest.mark.parametrize(
    "action_of",
    [
        lambda w: reverse("console:key-revoke", args=[w.rival_key.pk]),
        lambda w: reverse("console:key-rotate", args=[w.rival_key.pk]),
        lambda w: reverse("console:subscription-approve", args=[w.rival_subscription.pk]),
        lambda w: reverse("console:subscription-reject", args=[w.rival_subscription.pk]),
        lambda w: reverse("console:team-invite", args=[w.rival_team.pk]),
    ],
    ids=["revoke", "rotate", "approve", "reject", "invite"],
)
def test_actions_on_guessed_ids_of_another_tenant_are_not_found_and_change_nothing(client, world, action_of):
    client.force_login(world.users["tenant_admin"])
    audited_before = AuditLogEntry.objects.count()

    response = client.post(action_of(world), {"reason": "x", "grace_s": "0", "email": "a@b.test", "role": "member"})

    assert response.status_code == 404
    assert AuditLogEntry.objects.count() == audited_before
    world.rival_key.refresh_from_db()
    world.rival_subscription.refresh_from_db()
    assert not world.rival_key.is_revoked and world.rival_subscription.status == "pending"


def test_a_member_of_acme_cannot_open_a_team_of_acme_they_are_not_in(client, world):
    client.force_login(world.users["member"])

    assert client.get(reverse("console:team", args=[world.other_team.pk])).status_code == 403
