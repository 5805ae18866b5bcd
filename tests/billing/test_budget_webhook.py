"""A threshold crossed posts once to the budget's webhook; a dead webhook loses the alert nothing else."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing import budgets
from billing.models import Budget, BudgetAlert
from portal.models import Notification
from tests.factories import TeamFactory
from tests.upstreams.server import LoopbackServer, RequestLog, free_port, read_body, send_json

pytestmark = pytest.mark.django_db(transaction=True)
PERIOD = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def tasks_inline():
    """What is sent, not how it is queued: with a broker configured (CI's second run) the task runs here too."""
    from config.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


class WebhookReceiver:
    def __init__(self) -> None:
        self.log = RequestLog()

    async def __call__(self, scope, receive, send):
        self.log.record(scope, await read_body(receive))
        await send_json(send, 200, {"ok": True})


def budget_with_webhook(url: str) -> Budget:
    team = TeamFactory()
    return Budget.objects.create(
        tenant=team.tenant,
        scope="team",
        target_id=team.pk,
        period="monthly",
        limit_usd=Decimal("10"),
        thresholds=[50, 100],
        webhook_url=url,
    )


def test_a_crossed_threshold_posts_its_event_once():
    receiver = WebhookReceiver()
    with LoopbackServer(receiver) as server:
        budget = budget_with_webhook(f"{server.url}/hooks/budget")

        first = budgets.record_threshold_crossed(budget_id=budget.pk, period_start=PERIOD, threshold=50)
        again = budgets.record_threshold_crossed(budget_id=budget.pk, period_start=PERIOD, threshold=50)

    assert first is not None and again is None
    assert [r["path"] for r in receiver.log.requests] == ["/hooks/budget"]
    event = receiver.log.requests[0]["json"]
    assert event["event"] == "budget.threshold_crossed" and event["threshold"] == 50
    assert event["budget"]["id"] == budget.pk and event["budget"]["limit_usd"] == "10.0000000000"
    assert event["period_start"] == "2026-11-01T00:00:00+00:00"


def test_a_dead_webhook_still_leaves_the_alert_and_the_inbox_message(django_user_model):
    budget = budget_with_webhook(f"http://127.0.0.1:{free_port()}/nobody-listens")
    admin = django_user_model.objects.create_user(username="a", email="a@acme.test", password="pw-1234567")
    budget.tenant.memberships.create(user=admin, role="tenant_admin")

    alert = budgets.record_threshold_crossed(budget_id=budget.pk, period_start=PERIOD, threshold=100)

    assert alert is not None and BudgetAlert.objects.count() == 1
    assert Notification.objects.filter(user=admin, subject__startswith="Budget at 100%").exists()
