from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.models import AuditLogEntry, Notification, Subscription
from tests.portal.factories import ProductFactory, SubscriptionFactory
from tests.portal.test_console_world import build_world

QUEUE = "/console/subscriptions/"
Status = Subscription.Status


@pytest.fixture
def world(db):
    return build_world()


def decide(client, action: str, subscription, **data):
    return client.post(reverse(f"console:subscription-{action}", args=[subscription.pk]), data)


def test_pending_requests_come_first_oldest_first_with_their_buttons(client, world):
    older = SubscriptionFactory(team=world.other_team, product=ProductFactory(tenant=world.tenant))
    Subscription.objects.filter(pk=older.pk).update(created_at=timezone.now() - timedelta(days=2))
    client.force_login(world.users["tenant_admin"])

    page = client.get(QUEUE).content.decode()

    rows = [page.index(f'data-testid="subscription-row-{s.pk}"') for s in (older, world.pending, world.active)]
    assert rows == sorted(rows)
    assert f'data-testid="approve-{world.pending.pk}"' in page and f'data-testid="reject-{world.pending.pk}"' in page
    assert f'data-testid="suspend-{world.active.pk}"' in page
    assert f'data-testid="approve-{world.active.pk}"' not in page


def test_the_queue_filters_by_status_and_says_when_nothing_waits(client, world):
    world.pending.delete()
    client.force_login(world.users["tenant_admin"])

    page = client.get(QUEUE, {"status": "pending"}).content.decode()

    assert "Nothing waiting" in page
    assert "Embeddings" not in page


def test_approving_from_the_queue_activates_audits_and_tells_the_team(client, world):
    admin = world.users["tenant_admin"]
    client.force_login(admin)

    response = decide(client, "approve", world.pending, next=QUEUE + "?status=pending")

    world.pending.refresh_from_db()
    assert response.status_code == 302 and response.headers["location"] == QUEUE + "?status=pending"
    assert (world.pending.status, world.pending.decided_by) == (Status.ACTIVE, admin)
    assert AuditLogEntry.objects.filter(action="subscription.approved", actor=admin).exists()
    assert Notification.objects.filter(user=world.users["team_owner"], subject__contains="approved").exists()


def test_rejecting_records_the_reason(client, world):
    client.force_login(world.users["tenant_admin"])

    decide(client, "reject", world.pending, reason="use Embeddings instead")

    world.pending.refresh_from_db()
    assert (world.pending.status, world.pending.reason) == (Status.REJECTED, "use Embeddings instead")
    entry = AuditLogEntry.objects.get(action="subscription.rejected")
    assert entry.reason == "use Embeddings instead"


def test_rejecting_without_a_reason_shows_the_error_beside_the_reason_field(client, world):
    client.force_login(world.users["tenant_admin"])

    response = decide(client, "reject", world.pending, reason="  ")

    world.pending.refresh_from_db()
    assert response.status_code == 200 and world.pending.status == Status.PENDING
    page = response.content.decode()
    error = "Say why, so the team knows what to change."
    assert f'<p class="field-error" id="id_reason_error" role="alert">{error}</p>' in page
    assert page.index('id="field-reason"') < page.index(error)
    assert not AuditLogEntry.objects.filter(action="subscription.rejected").exists()


def test_suspending_and_resuming_an_active_subscription_are_both_audited(client, world):
    client.force_login(world.users["platform_admin"])

    decide(client, "suspend", world.active, reason="over budget")
    world.active.refresh_from_db()
    assert world.active.status == Status.SUSPENDED
    assert f'data-testid="resume-{world.active.pk}"' in client.get(QUEUE).content.decode()

    decide(client, "resume", world.active)
    world.active.refresh_from_db()
    assert world.active.status == Status.ACTIVE
    actions = AuditLogEntry.objects.filter(target_type="subscription", target_id=str(world.active.pk)).values_list(
        "action", flat=True
    )
    assert set(actions) == {"subscription.suspended", "subscription.resumed"}


@pytest.mark.parametrize(("action", "status"), [("approve", "active"), ("resume", "pending")])
def test_an_illegal_transition_is_explained_and_changes_nothing(client, world, action, status):
    subscription = world.active if action == "approve" else world.pending
    client.force_login(world.users["tenant_admin"])

    response = decide(client, action, subscription)

    subscription.refresh_from_db()
    assert response.status_code == 302 and subscription.status == status
    assert "cannot be" in client.get(QUEUE).content.decode()  # the flash message


def test_the_subscription_page_shows_the_request_and_its_history(client, world):
    client.force_login(world.users["tenant_admin"])
    decide(client, "approve", world.pending)

    page = client.get(reverse("console:subscription", args=[world.pending.pk])).content.decode()

    assert world.pending.purpose in page
    assert "Approved" in page and "admin@acme.test" in page
    assert f'data-testid="suspend-{world.pending.pk}"' in page


def test_a_next_parameter_pointing_elsewhere_is_ignored(client, world):
    client.force_login(world.users["tenant_admin"])

    response = decide(client, "approve", world.pending, next="https://evil.test/")

    assert response.headers["location"] == QUEUE
