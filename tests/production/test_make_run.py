"""`make run` in the production shape: with DATABASE_URL and REDIS_URL it serves with WORKERS gateway processes
and starts a Celery worker and beat beside them, which aggregate what the gateway records."""

import os
import re
import signal
import subprocess
import time

import httpx
import pytest
from django.conf import settings
from django.db import connection

from billing.models import UsageAggregate
from tests.gateway_process import REPO, database_url
from tests.upstreams.server import free_port

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql" or not settings.REDIS_URL,
        reason="needs the production configuration: PostgreSQL and REDIS_URL",
    ),
]


def children_of(pgid: int) -> list[str]:
    """Command lines of every process in the group make run leads, read from /proc: `ps` cuts long lines to
    $COLUMNS when it has no terminal, and a deep checkout path pushed "worker" past the cut."""
    lines = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getpgid(int(entry)) != pgid:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                lines.append(cmdline.read().replace(b"\0", b" ").decode(errors="replace").strip())
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue  # gone between the listing and the read
    return lines


def test_make_run_serves_and_starts_a_celery_worker_and_beat_that_aggregate(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "WORKERS": "2",
        "PORT": str(port),
        "TOLLWAY_DATA_DIR": str(tmp_path),
        "TOLLWAY_AGGREGATE_EVERY_S": "1",
        "TOLLWAY_AGGREGATE_SETTLE_S": "0.5",
    }
    run = subprocess.Popen(
        ["bash", "scripts/run.sh"], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        banner = ""
        while "Demo key:" not in banner:
            line = run.stdout.readline()
            assert line, f"make run stopped early: {banner}"
            banner += line
        key = re.search(r"Demo key:\s+(sk-tw-\S+)", banner).group(1)
        assert "workers: 2" in banner and "Celery: worker + beat" in banner
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
        answers = [
            httpx.post(f"{url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"})
            for _ in range(3)
        ]
        assert [a.status_code for a in answers] == [200, 200, 200]

        processes = children_of(run.pid)
        celery = [p for p in processes if "celery" in p]
        assert any(" worker " in f" {p} " for p in celery), processes
        assert any(" beat " in f" {p} " for p in celery), processes
        deadline = time.monotonic() + 30
        aggregated = 0
        while aggregated < 3 and time.monotonic() < deadline:
            time.sleep(0.5)
            aggregated = sum(UsageAggregate.objects.filter(granularity="hour").values_list("requests", flat=True))
        assert aggregated == 3  # counted by beat's schedule on the worker, not by this test
    finally:
        os.killpg(run.pid, signal.SIGTERM)
        run.wait(timeout=30)
