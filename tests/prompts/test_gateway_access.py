"""Who may call a prompt on /v1: its own team, every team of its tenant when shared (both within the key's
aliases, as on chat), and the subscribers of a product that bundles it (the product grants the call, private
text and all). Another team's unshared prompt and another tenant's answer 404, exactly as a missing one."""

import pytest

from portal import services as portal_services
from portal.models import APIKey, Subscription
from tests.factories import TeamFactory
from tests.gateway import start_gateway, wait_for_usage
from tests.portal.factories import ProductFactory, SubscriptionFactory
from tests.prompts.gateway_prompts import call_prompt, published

pytestmark = pytest.mark.django_db(transaction=True)

NOT_FOUND = {"type": "invalid_request_error", "param": None, "code": "prompt_not_found"}


def not_found(answer) -> bool:
    error = answer.json()["error"]
    return answer.status_code == 404 and {k: error[k] for k in NOT_FOUND} == NOT_FOUND


@pytest.fixture
def prompts(team, catalogue):
    """In Acme: the team's own (unshared) prompt, a neighbour team's shared one and its unshared one; in another
    tenant a shared one and a private one bundled in a platform product."""
    neighbour = TeamFactory(tenant=team.tenant, name="Neighbours")
    stranger = TeamFactory(name="Strangers")
    published(team=team, slug="own")
    published(team=neighbour, slug="shared-here", is_shared=True)
    published(team=neighbour, slug="theirs")
    published(team=stranger, slug="shared-elsewhere", is_shared=True)
    bundled, _owner = published(team=stranger, slug="bundled", is_private=True)
    product = ProductFactory(tenant=None, aliases=[], requires_approval=False)
    bundled.products.add(product)
    return {"neighbour": neighbour, "stranger": stranger, "product": product}


@pytest.fixture
def gateway(prompts):
    with start_gateway() as server:
        yield server


def test_a_team_calls_its_own_prompts_and_its_tenants_shared_ones(gateway, team):
    key = portal_services.issue_api_key(team=team).secret

    own = call_prompt(gateway.url, key, "own")
    shared = call_prompt(gateway.url, key, "shared-here")

    assert (own.status_code, own.headers["x-tollway-prompt"]) == (200, "own@1")
    assert (shared.status_code, shared.headers["x-tollway-prompt"]) == (200, "shared-here@1")
    assert [(r.prompt, r.status) for r in wait_for_usage(2)] == [("own", 200), ("shared-here", 200)]


def test_another_teams_unshared_prompt_and_another_tenants_answer_404_as_a_missing_one(gateway, team):
    key = portal_services.issue_api_key(team=team).secret

    answers = {slug: call_prompt(gateway.url, key, slug) for slug in ("theirs", "shared-elsewhere", "bundled", "nope")}

    assert {slug: not_found(a) for slug, a in answers.items()} == dict.fromkeys(answers, True)
    # Nothing tells them apart: the same message shape, no prompt header, and no slug in the records.
    assert all("x-tollway-prompt" not in a.headers for a in answers.values())
    assert [(r.status, r.prompt, r.prompt_version) for r in wait_for_usage(4)] == [(404, "", None)] * 4


def test_a_key_not_allowed_the_templates_alias_is_refused_as_on_chat(gateway, team):
    key = portal_services.issue_api_key(team=team, allowed_aliases=["failover"]).secret

    answer = call_prompt(gateway.url, key, "own")

    assert answer.status_code == 403 and answer.json()["error"]["code"] == "model_not_allowed"
    assert answer.headers["x-tollway-prompt"] == "own@1"
    [record] = wait_for_usage(1)
    assert (record.status, record.prompt, record.prompt_version) == (403, "own", 1)


def test_a_subscriber_of_a_product_that_bundles_a_private_prompt_calls_it_through_its_subscription(team, prompts):
    subscription = SubscriptionFactory(team=team, product=prompts["product"], status=Subscription.Status.ACTIVE)
    # A portal key reaches what its team's subscriptions grant: this product grants the prompt, not its alias.
    key = portal_services.issue_api_key(team=team, source=APIKey.Source.PORTAL).secret

    with start_gateway() as gateway:
        bundled = call_prompt(gateway.url, key, "bundled")
        own = call_prompt(gateway.url, key, "own")  # its own team's prompt still needs the alias granted

        assert (bundled.status_code, bundled.headers["x-tollway-prompt"]) == (200, "bundled@1")
        assert own.status_code == 403
        record, refused = wait_for_usage(2)
    assert (record.prompt, record.subscription_id, record.team_id) == ("bundled", subscription.pk, team.pk)
    assert refused.status == 403


def test_a_suspended_subscription_grants_no_bundled_prompt(team, prompts):
    SubscriptionFactory(team=team, product=prompts["product"], status=Subscription.Status.SUSPENDED)
    key = portal_services.issue_api_key(team=team, source=APIKey.Source.PORTAL).secret

    with start_gateway() as gateway:
        assert not_found(call_prompt(gateway.url, key, "bundled"))
        [record] = wait_for_usage(1)
    assert record.status == 404
