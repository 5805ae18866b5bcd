import pytest
from django.urls import reverse

from tests.factories import DeploymentFactory, make_alias
from tests.portal.test_console_world import build_world


@pytest.fixture
def world(db):
    return build_world()


def test_the_playground_offers_the_models_of_the_users_active_subscriptions(client, world):
    world.embeddings.aliases.set([make_alias("embed-small", DeploymentFactory())])
    world.chat.aliases.set([make_alias("chat-large", DeploymentFactory())])  # only pending
    client.force_login(world.users["member"])

    response = client.get(reverse("console:playground"))
    page = response.content.decode()

    assert list(response.context["aliases"]) == ["embed-small"]
    assert '<option value="embed-small">' in page and "chat-large" not in page
    assert 'data-endpoint="/v1/chat/completions"' in page
    assert "/static/portal/playground.js" in page
    assert 'type="password" id="pg-key"' in page  # the key is typed in the browser, never sent to this page


def test_without_an_active_subscription_the_playground_points_to_the_catalogue(client, world):
    client.force_login(world.users["finance"])
    world.active.delete()

    page = client.get(reverse("console:playground")).content.decode()

    assert "request access" in page and reverse("console:catalogue") in page
