"""Acceptance: PostgreSQL goes away for a minute under load and no usage record is lost.

Two gateway workers with a low open-file limit, PostgreSQL behind a TCP proxy the test cuts, Redis direct,
16 concurrent callers (half streaming) before, during and after the outage. Afterwards every answered call
(every x-request-id the clients received) has exactly one record, stored by the workers themselves once the
database is back; the workers' open files stayed bounded and none was restarted.

TOLLWAY_TEST_DB_OUTAGE_S sets the outage's length (60 s by default).
"""

import asyncio
import os
import resource
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from django.conf import settings
from django.db import connection

from billing.models import UsageRecord
from tests.billing.ledger_helpers import clear_ledger_in_redis
from tests.billing.tcp_proxy import CuttableProxy
from tests.gateway_process import GatewayProcess, database_url
from tests.observability.prometheus_text import scrape, total

OUTAGE_S = float(os.environ.get("TOLLWAY_TEST_DB_OUTAGE_S", "60"))
OPEN_FILES_LIMIT = 256  # low enough that a file per retry (the old writer) runs out within seconds
CALLERS = 16
WORKERS = 2

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql" or not settings.REDIS_URL,
        reason="needs the production shape: a PostgreSQL test database and REDIS_URL",
    ),
    pytest.mark.timeout(OUTAGE_S + 110),
]

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


def worker_pids(master_pid: int) -> list[int]:
    """uvicorn's worker processes (not multiprocessing's resource tracker, also a child)."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    cmdlines = {int(pid): Path(f"/proc/{pid}/cmdline").read_bytes() for pid in children}
    return sorted(pid for pid, cmdline in cmdlines.items() if b"resource_tracker" not in cmdline)


def open_files(pid: int, outbox: Path) -> tuple[int, int]:
    """(all open files, outbox segments) of a process."""
    targets = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:
            pass  # closed meanwhile
    return len(targets), sum(target.startswith(str(outbox)) for target in targets)


class Traffic:
    """CALLERS clients calling in a loop until told to stop; every answer's request id and status is kept."""

    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key
        self.answered: dict[str, tuple[int, float]] = {}  # request id -> (status, when)
        self.unverified = 0  # 503 keys_unavailable: the key could not be checked, so no record is due
        self.transport_errors: list[str] = []
        self.is_stopping = False

    async def caller(self, client: httpx.AsyncClient, index: int) -> None:
        body = {**BODY, "stream": index % 2 == 1}
        headers = {"authorization": f"Bearer {self.key}"}
        while not self.is_stopping:
            try:
                async with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
                    await response.aread()
                    if response.status_code == 503 and b'"keys_unavailable"' in response.content:
                        self.unverified += 1
                        continue
                    self.answered[response.headers["x-request-id"]] = (response.status_code, time.monotonic())
            except httpx.TransportError as exc:
                self.transport_errors.append(repr(exc))
                await asyncio.sleep(0.1)

    async def run(self, until: asyncio.Event) -> None:
        limits = httpx.Limits(max_connections=CALLERS)
        async with httpx.AsyncClient(base_url=self.url, limits=limits, timeout=30) as client:
            callers = [asyncio.ensure_future(self.caller(client, i)) for i in range(CALLERS)]
            await until.wait()
            self.is_stopping = True
            await asyncio.gather(*callers)


async def sample_open_files(pids: list[int], outbox: Path, until: asyncio.Event, peaks: dict) -> None:
    """The peak (all files, outbox segments) of each worker until `until` is set."""
    while not until.is_set():
        for pid in pids:
            total, segments = open_files(pid, outbox)
            peak = peaks.get(pid, (0, 0))
            peaks[pid] = (max(peak[0], total), max(peak[1], segments))
        await asyncio.sleep(0.25)


def key_in_every_worker(url: str, key: str) -> int:
    """Calls on fresh connections (the kernel spreads them over the workers) until each worker holds the key;
    returns how many calls it took (each leaves a record)."""
    deadline, calls = time.monotonic() + 30, 0
    # The sum below must count these workers alone, and each of them (a worker reports within a second).
    while (processes := total(scrape(url), "tollway_worker_processes")) != WORKERS:
        assert processes < WORKERS and time.monotonic() < deadline, f"{processes} processes report metrics"
        time.sleep(0.2)
    while total(scrape(url), "tollway_key_cache_size") < WORKERS:
        assert time.monotonic() < deadline, "the key did not reach every worker's memory"
        httpx.post(f"{url}/v1/chat/completions", json=BODY, headers={"authorization": f"Bearer {key}"}, timeout=10)
        calls += 1
    return calls


def wait_for_records(request_ids: set[str], *, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        stored = UsageRecord.objects.filter(request_id__in=request_ids).count()
        if stored >= len(request_ids) or time.monotonic() > deadline:
            return stored
        time.sleep(0.5)


def test_a_minute_without_postgresql_under_load_loses_no_usage_record(catalogue, api_key, tmp_path, capfd):
    clear_ledger_in_redis()
    database = urlsplit(database_url())
    pg_proxy = CuttableProxy(database.hostname, database.port or 5432).start()
    env = {
        "DATABASE_URL": database._replace(netloc=f"{database.username}@127.0.0.1:{pg_proxy.port}").geturl(),
        "TOLLWAY_USAGE_MEMORY_ROWS": "500",  # most of the backlog must be read back from the outbox files
        "TOLLWAY_ACCESS_LOG": "0",
    }
    outbox = tmp_path / "outbox"
    gateway = GatewayProcess(workers=WORKERS, env=env, outbox_dir=outbox).start()
    try:
        pids = worker_pids(gateway.process.pid)
        assert len(pids) == WORKERS
        for pid in [gateway.process.pid, *pids]:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (OPEN_FILES_LIMIT, OPEN_FILES_LIMIT))
        # Every worker has served the key before the cut, as a key in use has: a key a process first meets during
        # an outage cannot be checked, and answers 503 keys_unavailable (unauthenticated: no usage record).
        warm_calls = key_in_every_worker(gateway.url, api_key)
        traffic = Traffic(gateway.url, api_key)

        async def scenario() -> tuple[dict, dict, float]:
            nonlocal pg_proxy
            stop, outage_over = asyncio.Event(), asyncio.Event()
            load = asyncio.ensure_future(traffic.run(stop))
            before, during = {}, {}
            warmup_over = asyncio.Event()
            sampler = asyncio.ensure_future(sample_open_files(pids, outbox, warmup_over, before))
            await asyncio.sleep(3)
            warmup_over.set()
            await sampler
            pg_proxy.cut()
            sampler = asyncio.ensure_future(sample_open_files(pids, outbox, outage_over, during))
            await asyncio.sleep(OUTAGE_S)
            outage_over.set()
            await sampler
            pg_proxy.stop()
            pg_proxy = CuttableProxy(database.hostname, database.port or 5432, port=pg_proxy.port).start()
            back_at = time.monotonic()
            await asyncio.sleep(5)
            stop.set()
            await load
            return before, during, back_at

        before, during, back_at = asyncio.run(scenario())

        answered = traffic.answered
        stored = wait_for_records(set(answered), timeout_s=60)  # the workers drain their backlog themselves
        records = UsageRecord.objects.count()
        assert worker_pids(gateway.process.pid) == pids  # no worker died or was replaced
        leftover_segments = len(list(outbox.glob("*.jsonl")))
    finally:
        if gateway.process.poll() is None:
            gateway.terminate()
        pg_proxy.stop()
        clear_ledger_in_redis()
    logs = capfd.readouterr().err

    assert traffic.transport_errors == []
    after = [status for status, at in answered.values() if at > back_at + 1]
    assert after and after.count(200) >= len(after) * 0.9  # calls keep succeeding once the database is back
    assert len(answered) > 500
    assert (stored, records - warm_calls) == (len(answered), len(answered))
    # Every worker held the key before the cut, so none may answer it 503 keys_unavailable during the outage.
    # (Seen in full-suite runs until the gateway had its own metrics directory: the warm-up check above then
    # also summed the test process's gauges and let one worker start the outage without the key.)
    assert traffic.unverified == 0, f"{traffic.unverified} calls answered keys_unavailable"
    # Open files stay bounded however long the outage: at most 1 current + 4 sealed outbox segments + 1 being
    # read, and the rest is the load's sockets (16 callers and their upstream calls), far below the limit.
    # The old writer opened a segment per failed try and ran into the limit within seconds.
    for pid in pids:
        total, segments = during[pid]
        assert segments <= 6 and total <= 100, (pid, before[pid], during[pid])
    assert leftover_segments <= WORKERS  # one current (empty) segment each
    # One warning per worker, not one per try (two processes share stderr: a line may be torn, hence <=).
    assert 1 <= logs.count("storing usage records failed (") <= WORKERS
    assert "usage flush failed" not in logs
    print(
        f"answered {len(answered)}, stored {stored}; peak open files (all, outbox) before / during the outage: "
        + ", ".join(f"{before[pid]} / {during[pid]}" for pid in pids)
    )
