"""Acceptance: without a broker (the embedded default of `make run`), a call shows in the finance and
operations dashboards within TOLLWAY_AGGREGATE_EVERY_S + TOLLWAY_AGGREGATE_SETTLE_S + the usage flush
interval, with nobody reading the usage summary. A real uvicorn gateway with two workers, the official OpenAI
SDK, and the pages read over HTTP by a signed-in user."""

import re
import time

import httpx
import openai
import pytest
from django.db.models import Sum

from billing.models import UsageAggregate
from tests.gateway_process import GatewayProcess
from tests.portal.factories import PASSWORD, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

EVERY_S, SETTLE_S, FLUSH_S = 2.0, 1.0, 0.05
# The process may wait this much longer on a machine shared with other test runs (start of the thread, a
# run that takes a moment, the page's own queries).
SLACK_S = 6.0
BOUND_S = EVERY_S + SETTLE_S + FLUSH_S + SLACK_S


def signed_in(base_url: str, email: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, follow_redirects=True, timeout=10)
    form = client.get("/accounts/login/").text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    client.post("/accounts/login/", data={"login": email, "password": PASSWORD, "csrfmiddlewaretoken": token})
    return client


def requests_shown(client: httpx.Client) -> tuple[str, str]:
    finance = client.get("/console/dashboards/").text
    operations = client.get("/console/dashboards/operations/").text
    on_finance = re.search(r'data-testid="total-requests">([^<]*)<', finance).group(1)
    on_operations = re.search(r"requests/s on average \(([^ ]*) requests\)", operations).group(1)
    return on_finance, on_operations


def test_a_call_shows_in_the_finance_and_operations_dashboards_within_the_bound_without_a_broker(api_key, tmp_path):
    admin = UserFactory(is_superuser=True, is_staff=True)
    env = {
        "TOLLWAY_CELERY_EAGER": "1",  # no broker, whatever this test run's REDIS_URL says
        "TOLLWAY_EMBEDDED_BEAT": "1",
        "TOLLWAY_AGGREGATE_EVERY_S": str(EVERY_S),
        "TOLLWAY_AGGREGATE_SETTLE_S": str(SETTLE_S),
        "TOLLWAY_USAGE_FLUSH_INTERVAL_S": str(FLUSH_S),
    }
    with GatewayProcess(workers=2, env=env, outbox_dir=tmp_path / "outbox") as gateway:
        pages = signed_in(gateway.url, admin.email)
        assert requests_shown(pages) == ("0", "—")

        sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=api_key, max_retries=0)
        called_at = time.monotonic()
        sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])

        shown = requests_shown(pages)
        while shown != ("1", "1") and time.monotonic() - called_at < BOUND_S:
            time.sleep(0.2)
            shown = requests_shown(pages)
        assert shown == ("1", "1"), f"not on the dashboards {BOUND_S} s after the call"

    # Two workers, one schedule: the call is counted once, in its hour and its day.
    for granularity in ("hour", "day"):
        rows = UsageAggregate.objects.filter(granularity=granularity)
        assert rows.aggregate(requests=Sum("requests"))["requests"] == 1
