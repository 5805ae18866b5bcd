"""Real gateway processes (uvicorn, N workers) on loopback, sharing the test database, for the multi-process,
SIGTERM and SIGKILL tests."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from django.db import connection

from tests.upstreams.server import free_port

REPO = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """The URL of the database this test runs against (the test database, not the configured one)."""
    cfg = connection.settings_dict
    if cfg["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{cfg['NAME']}"
    auth = cfg["USER"] + (f":{cfg['PASSWORD']}" if cfg["PASSWORD"] else "")
    return f"postgres://{auth}@{cfg['HOST'] or '127.0.0.1'}:{cfg['PORT'] or 5432}/{cfg['NAME']}"


class GatewayProcess:
    def __init__(self, *, workers: int = 1, env: dict[str, str] | None = None, outbox_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "TOLLWAY_USAGE_OUTBOX_DIR": str(outbox_dir),
            # Its own metrics directory: in the shared default, /metrics would also sum the gauges of the test
            # process and of earlier gateways (a "key in every worker" check once passed with one worker short).
            "TOLLWAY_METRICS_DIR": str(outbox_dir.parent / f"metrics-{self.port}"),
            "TOLLWAY_ALLOW_LOOPBACK_UPSTREAMS": "1",
            **(env or {}),
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> "GatewayProcess":
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "config.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        self.process = subprocess.Popen(command, cwd=REPO, env=self.env, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/v1/models", timeout=1).status_code == 401:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("gateway did not start")

    def terminate(self, *, timeout_s: float = 30) -> int:
        """SIGTERM, as a deploy does, and wait for a graceful exit."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_s)

    def kill(self) -> None:
        """SIGKILL every process of the gateway: a hard crash."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        # The workers die a moment after the master; wait until none of the group is left.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)

    def __enter__(self) -> "GatewayProcess":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()
