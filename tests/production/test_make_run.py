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
from portal import services
from portal.models import APIKey
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


def start_make_run(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """scripts/run.sh in its own process group; returns it with the banner, once the gateway is ready."""
    run = subprocess.Popen(
        ["bash", "scripts/run.sh"], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    banner = ""
    while "curl " not in banner:
        line = run.stdout.readline()
        assert line, f"make run stopped early: {banner}"
        banner += line
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{env['PORT']}/readyz").status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    return run, banner


def stop(run: subprocess.Popen) -> None:
    os.killpg(run.pid, signal.SIGTERM)
    run.wait(timeout=30)


def demo_key_of(banner: str) -> str:
    return re.search(r"Demo key:\s+(sk-tw-\S+)", banner).group(1)


def chat_status(port: int, key: str) -> int:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    # A worker's first chat loads the tokenizer the demo provider counts with: seconds on a busy machine.
    return httpx.post(url, json=body, headers={"authorization": f"Bearer {key}"}, timeout=30).status_code


def make_run_env(tmp_path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "PORT": str(free_port()),
        "TOLLWAY_DATA_DIR": str(tmp_path),
        **extra,
    }


def test_make_run_serves_and_starts_a_celery_worker_and_beat_that_aggregate(tmp_path):
    env = make_run_env(tmp_path, WORKERS="2", TOLLWAY_AGGREGATE_EVERY_S="1", TOLLWAY_AGGREGATE_SETTLE_S="0.5")
    port = int(env["PORT"])
    run, banner = start_make_run(env)
    try:
        key = demo_key_of(banner)
        assert "workers: 2" in banner and "Celery: worker + beat" in banner
        assert [chat_status(port, key) for _ in range(3)] == [200, 200, 200]

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
        stop(run)


def test_a_restart_keeps_the_demo_key_and_a_replaced_one_is_announced(tmp_path):
    env = make_run_env(tmp_path, TOLLWAY_CELERY_EAGER="1")
    port = int(env["PORT"])
    run, first = start_make_run(env)
    key = demo_key_of(first)
    stop(run)

    run, second = start_make_run(env)
    try:
        assert demo_key_of(second) == key and "the same key as last start" in second
        assert chat_status(port, key) == 200  # the key exported after the first start still works
    finally:
        stop(run)

    services.revoke_api_key(api_key=APIKey.objects.get(name="demo key", is_revoked=False))
    run, third = start_make_run(env)
    try:
        new_key = demo_key_of(third)
        assert new_key != key
        assert "The demo key has CHANGED" in third and f"export TOLLWAY_KEY={new_key}" in third
        assert chat_status(port, new_key) == 200
    finally:
        stop(run)
