"""The navigation bar: the same links and counts on console pages and, through the context processor, on
allauth's account pages."""

import pytest
from django.conf import settings as django_settings
from django.test import RequestFactory

from portal.context_processors import console_nav
from portal.models import Notification
from tests.portal.test_console_world import build_world

PROCESSOR = "portal.context_processors.console_nav"


@pytest.fixture
def world(db):
    return build_world()


def test_admins_get_an_approvals_link_with_the_pending_count_and_everyone_an_unread_count(client, world):
    admin = world.users["tenant_admin"]
    Notification.objects.create(user=admin, subject="x")
    client.force_login(admin)

    page = client.get("/console/catalogue/").content.decode()

    assert 'href="/console/subscriptions/"' in page
    assert 'Approvals <span class="count" title="waiting for a decision">1</span>' in page
    assert 'Inbox <span class="count" title="unread">1</span>' in page


def test_a_member_gets_no_approvals_link(client, world):
    client.force_login(world.users["member"])

    page = client.get("/console/catalogue/").content.decode()

    assert 'href="/console/subscriptions/"' not in page and 'data-testid="nav-console"' in page


def test_the_context_processor_counts_for_the_signed_in_user_only(world):
    request = RequestFactory().get("/accounts/email/")
    request.user = world.users["platform_admin"]

    nav = console_nav(request)["nav"]

    assert nav.can_approve and nav.pending_approvals == 2  # Acme's and Globex's pending requests
    assert nav.unread_notifications == 0


@pytest.fixture
def with_nav_processor(settings):
    templates = [dict(engine) for engine in django_settings.TEMPLATES]
    processors = templates[0]["OPTIONS"]["context_processors"]
    if PROCESSOR not in processors:
        templates[0]["OPTIONS"] = {**templates[0]["OPTIONS"], "context_processors": [*processors, PROCESSOR]}
    settings.TEMPLATES = templates


def test_account_pages_show_the_same_navigation_once_the_processor_is_installed(client, world, with_nav_processor):
    client.force_login(world.users["tenant_admin"])

    page = client.get("/accounts/email/").content.decode()

    assert 'Approvals <span class="count" title="waiting for a decision">1</span>' in page
    assert 'class="settings-nav card"' in page
