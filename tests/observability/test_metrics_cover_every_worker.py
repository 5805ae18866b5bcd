import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from tests.gateway import wait_for_usage
from tests.gateway_process import GatewayProcess
from tests.observability.prometheus_text import scrape, total

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
SERVED = {"endpoint": "chat.completions", "alias": "gpt-4o-mini", "code": "200"}


def send_chats(gateway: GatewayProcess, api_key: str, count: int) -> None:
    # A fresh connection each time, so the kernel spreads requests over both worker processes.
    headers = {"authorization": f"Bearer {api_key}", "connection": "close"}
    for _ in range(count):
        assert httpx.post(f"{gateway.url}/v1/chat/completions", json=CHAT, headers=headers, timeout=10).is_success


def requests_by_pid(metrics_dir: Path) -> dict[int, float]:
    """What each live process's own file holds (files are named counter_<pid>x<random>.db)."""
    counts = {}
    for path in metrics_dir.glob("counter_*x*.db"):
        merged = MultiProcessCollector.merge([str(path)])
        pid = int(path.name.removeprefix("counter_").split("x")[0])
        counts[pid] = sum(s.value for m in merged if m.name == "tollway_requests" for s in m.samples)
    return counts


def settled_scrapes(gateway: GatewayProcess, expected: float, count: int) -> list:
    """Each worker writes its counts to the shared files about once a second: wait until the node's total
    arrives, then take `count` scrapes (each on a fresh connection, answered by either worker)."""
    deadline = time.monotonic() + 10
    while total(scrape(gateway.url), "tollway_requests_total", **SERVED) < expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return [scrape(gateway.url) for _ in range(count)]


def worker_pids(gateway: GatewayProcess) -> list[int]:
    """uvicorn's workers (not multiprocessing's resource tracker), by their command line."""
    pid = gateway.process.pid
    children = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [child for child in children if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]


def test_any_worker_reports_the_requests_every_worker_served(catalogue, api_key, tmp_path, capfd):
    metrics_dir = tmp_path / "metrics"
    env = {"TOLLWAY_METRICS_DIR": str(metrics_dir), "TOLLWAY_LOG_FORMAT": "json"}
    with GatewayProcess(workers=2, env=env, outbox_dir=tmp_path / "outbox") as gateway:
        send_chats(gateway, api_key, 20)
        wait_for_usage(20)
        scrapes = settled_scrapes(gateway, 20, 6)
        per_process = list(requests_by_pid(metrics_dir).values())
        assert gateway.terminate() == 0

    # Both processes served some of the 20, and every scrape, whoever answered it, counted all of them.
    assert len(per_process) == 2 and all(count > 0 for count in per_process), per_process
    assert [total(s, "tollway_requests_total", **SERVED) for s in scrapes] == [20] * 6
    assert [total(s, "tollway_worker_processes") for s in scrapes] == [2] * 6
    assert [total(s, "tollway_request_duration_seconds_count", alias="gpt-4o-mini") for s in scrapes] == [20] * 6
    # ...and each request left one JSON access line, with the key's display prefix and never the key.
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    access = [entry for entry in map(json.loads, lines) if entry["logger"] == "tollway.access"]
    assert len(access) == 20
    assert {(a["status"], a["alias"], a["deployment"]) for a in access} == {(200, "gpt-4o-mini", "main-gpt-4o-mini")}
    assert all(a["request_id"].startswith("req_") and api_key.startswith(a["key_prefix"]) for a in access)
    assert api_key not in "\n".join(lines) and api_key[14:] not in "\n".join(lines)


def test_a_replaced_worker_leaves_its_counts_in_the_node_totals(catalogue, api_key, tmp_path):
    metrics_dir = tmp_path / "metrics"
    env = {"TOLLWAY_METRICS_DIR": str(metrics_dir)}
    with GatewayProcess(workers=2, env=env, outbox_dir=tmp_path / "outbox") as gateway:
        send_chats(gateway, api_key, 10)
        settled_scrapes(gateway, 10, 0)  # a SIGKILL loses what a worker has not yet written (up to a second)
        served_by = requests_by_pid(metrics_dir)
        killed = max(served_by, key=served_by.get)  # the busier one: its counts must not vanish with it
        assert killed in worker_pids(gateway) and served_by[killed] > 0
        os.kill(killed, signal.SIGKILL)
        # uvicorn starts a replacement; wait until it serves and the dead worker no longer counts as live.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pids = worker_pids(gateway)
            if len(pids) == 2 and killed not in pids and total(scrape(gateway.url), "tollway_worker_processes") == 2:
                break
            time.sleep(0.2)
        send_chats(gateway, api_key, 6)
        scrapes = settled_scrapes(gateway, 16, 4)

    assert killed not in pids
    # Its counts were folded into the node's archive and its own files are gone.
    assert (metrics_dir / "counter_archive.db").exists()
    assert not list(metrics_dir.glob(f"*_{killed}x*"))
    assert [total(s, "tollway_requests_total", **SERVED) for s in scrapes] == [16] * 4
    assert [total(s, "tollway_worker_processes") for s in scrapes] == [2] * 4
