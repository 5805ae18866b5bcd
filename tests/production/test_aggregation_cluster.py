"""Acceptance: the production shape aggregates usage to the cent. Two gateway processes (two workers each) on
PostgreSQL and Redis, a Celery worker and Celery beat as separate processes; requests through the official
OpenAI SDK, a late record for a past hour, and the aggregates read back from the database."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal

import openai
import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from billing.aggregation import aggregate_bucket, aggregate_pending
from billing.models import AggregatedBucket, UsageAggregate
from billing.services import store_usage_rows
from portal.models import APIKey
from tests.gateway_process import REPO, GatewayProcess, database_url

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql" or not settings.REDIS_URL,
        reason="needs the production shape: a PostgreSQL test database and REDIS_URL (CI's second run sets both)",
    ),
    pytest.mark.timeout(90),
]

HOUR = timedelta(hours=1)


@pytest.fixture
def cluster_env(transactional_db) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.REDIS_URL,
        "TOLLWAY_AGGREGATE_EVERY_S": "1",
        "TOLLWAY_AGGREGATE_SETTLE_S": "1",
    }


@pytest.fixture
def celery_worker_and_beat(cluster_env, tmp_path):
    env = {**os.environ, **cluster_env}
    celery = [sys.executable, "-m", "celery", "-A", "config"]
    commands = [
        # --purge: tasks a previous run left in the broker must not run against this test's database.
        [*celery, "worker", "--pool=solo", "--purge", "--without-gossip", "--without-mingle", "--loglevel=warning"],
        [*celery, "beat", "--loglevel=warning", "--schedule", str(tmp_path / "beat-schedule")],
    ]
    processes = []
    try:
        for name, command in zip(("worker", "beat"), commands, strict=True):
            log = open(tmp_path / f"{name}.log", "wb")  # closed with the process, below
            processes.append((subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=log,
                                               start_new_session=True), log))  # fmt: skip
        yield [process for process, _ in processes]
    finally:
        for process, _ in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process, log in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            log.close()


def usage_row(key: APIKey, *, request_id: str, created_at, prompt: int, completion: int, cost: str) -> dict:
    return {
        "request_id": request_id, "created_at": created_at.timestamp(), "tenant_id": key.team.tenant_id,
        "team_id": key.team_id, "api_key_id": key.pk, "tenant_name": "Acme", "team_name": "Checkout",
        "key_prefix": key.prefix, "endpoint": "chat.completions", "alias": "gpt-4o-mini",
        "deployment": "main-gpt-4o-mini", "provider": "openai-test", "status": 200, "error_type": "", "attempts": 1,
        "stream": False, "prompt_tokens": prompt, "completion_tokens": completion, "cached_tokens": 0,
        "cost_usd": cost, "estimated": False, "latency_ms": 20.0, "ttfb_ms": 20.0, "upstream_latency_ms": 15.0,
    }  # fmt: skip


def wait_until(check, *, timeout_s: float = 25, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def totals(tenant_id: int, **filters) -> dict:
    rows = UsageAggregate.objects.filter(tenant_id=tenant_id, **filters)
    sums = rows.aggregate(
        requests=Sum("requests"), errors=Sum("errors"), streams=Sum("streams"), fallbacks=Sum("fallbacks"),
        prompt_tokens=Sum("prompt_tokens"), completion_tokens=Sum("completion_tokens"), cost_usd=Sum("cost_usd"),
    )  # fmt: skip
    return {name: value or 0 for name, value in sums.items()}


def snapshot(tenant_id: int) -> list[tuple]:
    fields = [f.name for f in UsageAggregate._meta.fields if f.name not in {"id", "computed_at"}]
    rows = UsageAggregate.objects.filter(tenant_id=tenant_id).values_list(*fields)
    return sorted(tuple(str(v) for v in row) for row in rows)


def test_two_gateways_a_celery_worker_and_beat_aggregate_to_the_cent_and_fold_in_late_records(
    catalogue, api_key, team, cluster_env, celery_worker_and_beat, tmp_path
):
    key = APIKey.objects.select_related("team").get(team=team)
    past_hour = timezone.now().replace(minute=0, second=0, microsecond=0) - 3 * HOUR
    # An hour three hours ago already has a record, which beat aggregates...
    store_usage_rows(rows=[usage_row(key, request_id="req_on_time", created_at=past_hour + timedelta(minutes=10),
                                     prompt=1000, completion=100, cost="0.0004500000")])  # fmt: skip
    wait_until(lambda: totals(team.tenant_id, granularity="hour", bucket_start=past_hour)["requests"] == 1,
               what="beat to aggregate the past hour")  # fmt: skip

    gateway_env = {name: cluster_env[name] for name in ("REDIS_URL", "CELERY_BROKER_URL")}
    with GatewayProcess(workers=2, env=gateway_env, outbox_dir=tmp_path / "outbox") as gateway:
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=api_key, max_retries=0)
        hi = [{"role": "user", "content": "Hi"}]
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o-mini", messages=hi)  # 9 + 12 tokens each
        for _chunk in client.chat.completions.create(model="gpt-4o-mini", messages=hi, stream=True):
            pass  # 9 + 5 tokens
        client.chat.completions.create(model="failover", messages=hi)  # 9 + 12, on the second deployment
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="bad-request", messages=hi)
        # ...and a late record for that hour arrives now (an outbox recovered after a crash, say).
        store_usage_rows(rows=[usage_row(key, request_id="req_late", created_at=past_hour + timedelta(minutes=50),
                                         prompt=10, completion=1, cost="0.0000000007")])  # fmt: skip

        recent = {"granularity": "hour", "bucket_start__gt": past_hour}
        wait_until(lambda: totals(team.tenant_id, **recent)["requests"] == 6, what="the requests' aggregates")

    # Six requests: prompt 3*9 + 9 + 9 = 45, completion 3*12 + 5 + 12 = 53 tokens;
    # cost (45 * 0.15 + 53 * 0.60) / 1e6 = 38.55 / 1e6 dollars.
    assert totals(team.tenant_id, **recent) == {
        "requests": 6, "errors": 1, "streams": 1, "fallbacks": 1,
        "prompt_tokens": 45, "completion_tokens": 53, "cost_usd": Decimal("0.0000385500"),
    }  # fmt: skip
    # The late record is folded into its hour: 0.00045 + 0.0000000007 dollars.
    wait_until(lambda: totals(team.tenant_id, granularity="hour", bucket_start=past_hour)["requests"] == 2,
               what="the late record to be folded in")  # fmt: skip
    past = totals(team.tenant_id, granularity="hour", bucket_start=past_hour)
    assert (past["prompt_tokens"], past["completion_tokens"], past["cost_usd"]) == (1010, 101, Decimal("0.0004500007"))
    # And the days agree with the hours: eight requests, 0.0004500007 + 0.00003855 dollars.
    wait_until(lambda: totals(team.tenant_id, granularity="day")["requests"] == 8, what="the daily aggregates")
    day = totals(team.tenant_id, granularity="day")
    assert (day["prompt_tokens"], day["completion_tokens"], day["cost_usd"]) == (1055, 154, Decimal("0.0004885507"))

    # Re-running aggregation, here and now, changes nothing.
    before = snapshot(team.tenant_id)
    aggregate_pending()
    for bucket in AggregatedBucket.objects.filter(granularity__in=["hour", "day"]).order_by("granularity"):
        aggregate_bucket(bucket.granularity, bucket.bucket_start)
    assert snapshot(team.tenant_id) == before
