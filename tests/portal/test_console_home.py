import pytest
from django.urls import reverse

from portal.models import Notification
from tests.portal.factories import UserFactory
from tests.portal.test_console_world import build_world

HOME = "/console/"


@pytest.fixture
def world(db):
    return build_world()


@pytest.mark.django_db
def test_a_user_without_an_organisation_is_asked_to_create_one_and_a_team(client):
    client.force_login(UserFactory())

    page = client.get(HOME).content.decode()

    assert 'data-testid="onboarding"' in page
    assert reverse("console:team-new") in page
    assert "No teams yet" in page and "All quiet" in page  # both empty states


def test_a_member_sees_their_team_and_no_approvals_or_onboarding(client, world):
    client.force_login(world.users["member"])

    page = client.get(HOME).content.decode()

    assert reverse("console:team", args=[world.team.pk]) in page
    assert "Search" not in page  # a team of their tenant they are not in
    assert 'data-testid="onboarding"' not in page
    assert 'data-testid="pending-approvals"' not in page
    assert 'data-testid="nav-console"' in page


def test_a_tenant_admin_sees_every_team_of_the_tenant_and_the_pending_count(client, world):
    client.force_login(world.users["tenant_admin"])

    response = client.get(HOME)
    page = response.content.decode()

    assert "Checkout" in page and "Search" in page and "Rivals" not in page
    assert response.context["nav"].pending_approvals == 1
    assert '<div class="stat-value" data-testid="pending-approvals">1</div>' in page


def test_recent_notifications_are_listed_newest_first(client, world):
    owner = world.users["team_owner"]
    Notification.objects.create(user=owner, subject="Older news")
    Notification.objects.create(user=owner, subject="Latest news")
    Notification.objects.create(user=world.users["member"], subject="Someone else's news")
    client.force_login(owner)

    page = client.get(HOME).content.decode()

    assert page.index("Latest news") < page.index("Older news")
    assert "Someone else's news" not in page


@pytest.mark.django_db
def test_an_anonymous_visitor_is_sent_to_sign_in(client):
    response = client.get(HOME)

    assert response.status_code == 302
    assert response.headers["location"] == f"{reverse('account_login')}?next={HOME}"
