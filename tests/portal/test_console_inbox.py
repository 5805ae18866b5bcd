import pytest
from django.urls import reverse

from portal.models import Notification
from tests.portal.factories import UserFactory

INBOX = "/console/inbox/"


@pytest.fixture
def user(db):
    return UserFactory()


def test_the_inbox_lists_only_the_users_own_notifications_and_counts_the_unread(client, user):
    Notification.objects.create(user=user, subject="Subscription to Chat approved", link="/console/teams/1/")
    Notification.objects.create(user=UserFactory(), subject="Not yours")
    client.force_login(user)

    page = client.get(INBOX).content.decode()

    assert "Subscription to Chat approved" in page and "Not yours" not in page
    assert "1 unread notification." in page


def test_an_empty_inbox_says_so(client, user):
    client.force_login(user)

    assert "Your inbox is empty" in client.get(INBOX).content.decode()


def test_marking_one_notification_read(client, user):
    notification = Notification.objects.create(user=user, subject="hello")
    client.force_login(user)

    response = client.post(reverse("console:inbox-read", args=[notification.pk]))

    notification.refresh_from_db()
    assert response.status_code == 302 and notification.is_read


def test_opening_a_notification_marks_it_read_and_follows_its_link(client, user):
    notification = Notification.objects.create(user=user, subject="hello", link="/console/subscriptions/")
    client.force_login(user)

    response = client.post(reverse("console:inbox-read", args=[notification.pk]), {"next": notification.link})

    assert response.headers["location"] == "/console/subscriptions/"


def test_marking_all_read_leaves_other_users_alone(client, user):
    Notification.objects.create(user=user, subject="a")
    Notification.objects.create(user=user, subject="b")
    someone_else = Notification.objects.create(user=UserFactory(), subject="c")
    client.force_login(user)

    client.post(reverse("console:inbox-read-all"))

    assert not Notification.objects.filter(user=user, is_read=False).exists()
    someone_else.refresh_from_db()
    assert not someone_else.is_read


def test_another_users_notification_is_not_found(client, user):
    theirs = Notification.objects.create(user=UserFactory(), subject="private")
    client.force_login(user)

    response = client.post(reverse("console:inbox-read", args=[theirs.pk]))

    theirs.refresh_from_db()
    assert response.status_code == 404 and not theirs.is_read


def test_long_inboxes_are_paginated(client, user):
    Notification.objects.bulk_create([Notification(user=user, subject=f"n{i}") for i in range(45)])
    client.force_login(user)

    page = client.get(INBOX, {"page": 3}).content.decode()

    assert "Page 3 of 3" in page and page.count('data-testid="notification-') == 5
