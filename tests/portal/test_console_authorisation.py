"""The console's authorisation matrix: every role against every page and action, with the status each
cell must answer. Outside their tenants users get 404 (ids cannot be probed); inside, a missing right is 403;
anonymous visitors are sent to sign in. A refused action must leave no trace in the audit log."""

import json

import pytest
from django.urls import reverse

from billing.models import Budget
from portal.models import AuditLogEntry
from tests.portal.factories import MembershipFactory, SubscriptionFactory
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


# --- prompt templates (issue 13) ------------------------------------------------------------------------------
# Checkout's prompt is read by Checkout's members, the tenant's admins and finance; written by Checkout's owners
# and the tenant's admins. Another tenant's admin is told it does not exist. JSON endpoints answer the same.


@pytest.fixture
def prompt_world(world):
    from portal.prompts import services as prompt_services
    from tests.factories import ModelAliasFactory
    from tests.prompts.factories import make_prompt

    owner = world.users["team_owner"]
    world.alias = ModelAliasFactory(name="mini").name
    world.prompt = make_prompt(team=world.team, owner=owner, alias=world.alias)
    prompt_services.create_version(world.prompt, actor=owner, message="first")
    prompt_services.update_draft(world.prompt, actor=owner, messages=[{"role": "user", "content": "On {{ticker}}."}])
    prompt_services.create_version(world.prompt, actor=owner, message="second")
    prompt_services.publish(world.prompt, actor=owner, environment="prod", version=1)
    prompt_services.publish(world.prompt, actor=owner, environment="prod", version=2)
    prompt_services.update_draft(world.prompt, actor=owner, messages=[{"role": "user", "content": "About {{ticker}}."}])
    search_owner = MembershipFactory(team=world.other_team, role="team_owner").user
    world.search_prompt = make_prompt(team=world.other_team, owner=search_owner, alias=world.alias, slug="search")
    world.shared_prompt = make_prompt(
        team=world.other_team, owner=search_owner, alias=world.alias, slug="shared", is_shared=True
    )
    rival_owner = MembershipFactory(team=world.rival_team, role="team_owner").user
    world.rival_prompt = make_prompt(team=world.rival_team, owner=rival_owner, alias=world.alias, slug="rival")
    prompt_services.create_version(world.rival_prompt, actor=rival_owner)
    prompt_services.publish(world.rival_prompt, actor=rival_owner, environment="prod", version=1)
    return world


def _draft(w, **changes):
    return {
        "name": "Ticker",
        "alias": w.alias,
        "message_role": ["user"],
        "message_content": ["Tell me about {{ticker}}."],
        "var_ticker_type": "string",
        "var_ticker_required": "on",
        "action": "save",
        **changes,
    }


def _prompt_url(name, w, prompt=None):
    return reverse(name, args=[(prompt or w.prompt).pk])


def _prompt_list(w):
    return "get", reverse("console:prompts"), {}


def _new_prompt_page(w):
    return "get", reverse("console:prompt-new"), {}


def _create_prompt(w):
    return "post", reverse("console:prompt-new"), _draft(w, slug="fresh", team=w.team.pk)


def _prompt_editor(w):
    return "get", _prompt_url("console:prompt", w), {}


def _save_draft(w):
    return "post", _prompt_url("console:prompt", w), _draft(w)


def _preview_draft(w):
    return "post", _prompt_url("console:prompt", w), _draft(w, action="preview", var_ticker_sample="ACME")


def _versions_page(w):
    return "get", _prompt_url("console:prompt-versions", w), {}


def _freeze_version(w):
    return "post", _prompt_url("console:prompt-versions", w), {"message": "third"}


def _publishing_page(w):
    return "get", _prompt_url("console:prompt-publishing", w), {}


def _publish(w):
    return "post", _prompt_url("console:prompt-publish", w), {"environment": "staging", "version": "1"}


def _split(w):
    body = {"environment": "dev", "version": "1", "other_version": "2", "other_percent": "10"}
    return "post", _prompt_url("console:prompt-split", w), body


def _rollback(w):
    return "post", _prompt_url("console:prompt-rollback", w), {"environment": "prod"}


def _add_environment(w):
    return "post", _prompt_url("console:prompt-environment-add", w), {"name": "canary"}


def _test_page(w):
    return "get", _prompt_url("console:prompt-test", w), {}


def _render(w):
    return "json", _prompt_url("console:prompt-render", w), {"version": 1, "values": {"ticker": "ACME"}}


def _keep_example(w):
    body = {"version": 1, "alias": w.alias, "variables": {"ticker": "ACME"}, "output": "ok", "latency_ms": 5}
    return "json", _prompt_url("console:prompt-examples", w), body


#                     anonymous member owner admin finance platform other-tenant-admin
PROMPT_MATRIX = {
    _prompt_list: (302, 200, 200, 200, 200, 200, 200),
    _new_prompt_page: (302, 403, 200, 200, 403, 200, 200),
    # Another tenant's admin is offered only their own teams: Checkout is refused beside the field.
    _create_prompt: (302, 403, 302, 302, 403, 302, 200),
    _prompt_editor: (302, 200, 200, 200, 200, 200, 404),
    _save_draft: (302, 403, 302, 302, 403, 302, 404),
    _preview_draft: (302, 403, 200, 200, 403, 200, 404),
    _versions_page: (302, 200, 200, 200, 200, 200, 404),
    _freeze_version: (302, 403, 302, 302, 403, 302, 404),
    _publishing_page: (302, 200, 200, 200, 200, 200, 404),
    _publish: (302, 403, 302, 302, 403, 302, 404),
    _split: (302, 403, 302, 302, 403, 302, 404),
    _rollback: (302, 403, 302, 302, 403, 302, 404),
    _add_environment: (302, 403, 403, 302, 403, 302, 404),
    _test_page: (302, 200, 200, 200, 200, 200, 404),
    _render: (302, 200, 200, 200, 200, 200, 404),
    _keep_example: (302, 403, 201, 201, 403, 201, 404),
}
PROMPT_CASES = [
    pytest.param(action, role, expected, id=f"{action.__name__.strip('_')}-{role}")
    for action, statuses in PROMPT_MATRIX.items()
    for role, expected in zip(ROLE_COLUMNS, statuses, strict=True)
]
PROMPT_WRITES = {_create_prompt, _save_draft, _freeze_version, _publish, _split, _rollback, _add_environment}
PROMPT_WRITES |= {_keep_example}


def _send(client, method, url, data):
    if method == "json":
        return client.post(url, json.dumps(data), content_type="application/json")
    return getattr(client, method)(url, data)


@pytest.mark.parametrize(("action", "role", "expected"), PROMPT_CASES)
def test_each_role_gets_the_expected_answer_from_each_prompt_page_and_action(
    client, prompt_world, action, role, expected
):
    user = prompt_world.user(role)
    if user is not None:
        client.force_login(user)
    method, url, data = action(prompt_world)
    audited_before = AuditLogEntry.objects.count()

    response = _send(client, method, url, data)

    assert response.status_code == expected
    if role == "anonymous":
        assert response.headers["location"].startswith(reverse("account_login") + "?next=")
    if action in PROMPT_WRITES:
        assert (AuditLogEntry.objects.count() > audited_before) is (expected in (201, 302) and role != "anonymous")


WRITE_BUTTONS = {
    _prompt_editor: ['data-testid="save-draft"', 'data-testid="preview"', 'data-testid="add-message"'],
    _versions_page: ['data-testid="freeze-form"'],
    _publishing_page: ['data-testid="publish-prod"', 'data-testid="split-prod"', 'data-testid="rollback-prod"'],
    _test_page: ['data-can-keep="true"'],
    _prompt_list: ['data-testid="new-prompt"'],
}


@pytest.mark.parametrize("page", WRITE_BUTTONS, ids=lambda page: page.__name__.strip("_"))
@pytest.mark.parametrize(("role", "has_buttons"), [("member", False), ("finance", False), ("team_owner", True)])
def test_readers_who_may_not_write_see_no_write_buttons(client, prompt_world, page, role, has_buttons):
    client.force_login(prompt_world.users[role])
    _, url, _ = page(prompt_world)

    html = client.get(url).content.decode()

    assert [marker in html for marker in WRITE_BUTTONS[page]] == [has_buttons] * len(WRITE_BUTTONS[page])


def test_a_member_reads_a_shared_prompt_of_another_team_but_changes_nothing(client, prompt_world):
    client.force_login(prompt_world.users["member"])
    shared = prompt_world.shared_prompt

    assert client.get(_prompt_url("console:prompt", prompt_world, shared)).status_code == 200
    assert client.post(_prompt_url("console:prompt", prompt_world, shared), _draft(prompt_world)).status_code == 403
    assert client.post(_prompt_url("console:prompt-versions", prompt_world, shared), {}).status_code == 403


@pytest.mark.parametrize(
    "url_name",
    ["console:prompt", "console:prompt-versions", "console:prompt-publishing", "console:prompt-test"],
)
def test_a_prompt_of_a_team_the_member_is_not_in_is_not_found(client, prompt_world, url_name):
    client.force_login(prompt_world.users["member"])

    assert client.get(_prompt_url(url_name, prompt_world, prompt_world.search_prompt)).status_code == 404


def test_a_subscriber_to_a_product_bundling_a_prompt_reads_none_of_it(client, prompt_world):
    w = prompt_world
    w.chat.prompts.add(w.prompt)
    SubscriptionFactory(team=w.rival_team, product=w.chat, status="active")
    client.force_login(w.users["other_tenant_admin"])

    assert client.get(_prompt_url("console:prompt", w)).status_code == 404
    assert "ticker-summary" not in client.get(reverse("console:prompts")).content.decode()


@pytest.mark.parametrize(
    "url_name",
    [
        "console:prompt",
        "console:prompt-versions",
        "console:prompt-publish",
        "console:prompt-split",
        "console:prompt-rollback",
        "console:prompt-environment-add",
        "console:prompt-render",
        "console:prompt-examples",
    ],
)
def test_prompt_actions_on_guessed_ids_of_another_tenant_are_not_found_and_change_nothing(
    client, prompt_world, url_name
):
    client.force_login(prompt_world.users["tenant_admin"])
    audited_before = AuditLogEntry.objects.count()

    response = client.post(
        _prompt_url(url_name, prompt_world, prompt_world.rival_prompt),
        {"environment": "prod", "version": "1", "message": "x", "name": "canary"},
    )

    assert response.status_code == 404
    assert AuditLogEntry.objects.count() == audited_before
    assert prompt_world.rival_prompt.publications.filter(is_current=True).get().split == {"1": 100}
