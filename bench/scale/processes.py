"""The processes the scale bench runs and watches: the canned nginx upstream and uvicorn gateways, measured from
/proc (RSS, CPU time) and over loopback (which worker answered, from the kernel's socket table)."""

import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# ../shared/bench beside the repository; a worktree in a subdirectory (wt/<branch>) finds it one level further up.
SHARED_BENCH = next(
    (path for path in (REPO.parent / "shared" / "bench", REPO.parents[1] / "shared" / "bench") if path.is_dir()),
    REPO.parent / "shared" / "bench",
)
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_for_port(port: int, *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not port_in_use(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")
        time.sleep(0.05)


class Upstream:
    """../shared/bench's canned nginx upstream, on our own port and run directory (bench.sh's is fixed to 9101)."""

    def __init__(self, *, port: int, run_dir: Path) -> None:
        self.port, self.run_dir = port, run_dir
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        config = (SHARED_BENCH / "upstream-nginx.conf").read_text()
        config = config.replace("__RUN__", str(self.run_dir)).replace("127.0.0.1:9101", f"127.0.0.1:{self.port}")
        (self.run_dir / "nginx.conf").write_text(config)
        subprocess.run(["nginx", "-c", str(self.run_dir / "nginx.conf")], check=True, timeout=30)
        wait_for_port(self.port, timeout_s=10)

    def stop(self) -> None:
        pid_file = self.run_dir / "nginx.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
            pid_file.unlink(missing_ok=True)


def cpu_ticks(pid: int) -> int:
    # Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def database_cpu_ticks() -> int:
    """CPU used so far by every PostgreSQL server process on this machine: on two cores, the database's work
    for a request is taken from the gateway's share."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            program = _cmdline(int(entry.name)).split(b"\0")[0]
            if program.startswith(b"postgres") or program.endswith(b"/postgres"):
                total += cpu_ticks(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue  # it ended while we looked
    return total


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1)) / 1024


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def answering_pid(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, int | None]:
    """GET `path` on a fresh connection: (status, pid of the process that accepted it). The response carries no
    pid, so the connection is kept open until the kernel's socket table (ss -p) has named its owner."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = conn.recv(65536)
        status = int(head.split(b" ", 2)[1])
        local_port = conn.getsockname()[1]
        table = subprocess.run(
            ["ss", "-tnpH", "state", "established", f"( sport = :{port} and dport = :{local_port} )"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
    owner = re.search(r"pid=(\d+)", table)
    return status, int(owner.group(1)) if owner else None


class GatewayNotReady(RuntimeError):
    pass


@dataclass
class Gateway:
    """`uvicorn config.asgi:application` as bench/run.sh starts it, with its own environment and log."""

    name: str
    port: int
    workers: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    ready_after_s: dict[int, float] = field(default_factory=dict)  # worker pid -> seconds from start to /readyz 200
    workers_seen: set[int] = field(default_factory=set)  # more than `workers`: the supervisor replaced some
    peak_start_rss_mb: float = 0.0  # the largest worker seen while waiting for readiness

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if port_in_use(self.port):
            raise RuntimeError(f"127.0.0.1:{self.port} is in use; stop that server first")
        command = [str(REPO / ".venv/bin/uvicorn"), "config.asgi:application", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--workers", str(self.workers), "--loop", "uvloop"]
        command += ["--http", "httptools", "--no-access-log", "--log-level", "warning"]
        self.started_at = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def worker_pids(self) -> list[int]:
        # One worker: uvicorn serves in the process it started. More: a supervisor spawns them, beside
        # multiprocessing's resource tracker, which serves nothing.
        if self.workers == 1:
            return [self.process.pid]
        return [pid for pid in children_of(self.process.pid) if b"resource_tracker" not in _cmdline(pid)]

    def all_pids(self) -> list[int]:
        return sorted({self.process.pid, *self.worker_pids()})

    def wait_ready(self, *, timeout_s: float) -> None:
        """Poll /readyz on fresh connections until every worker has answered 200 once; records when each did."""
        deadline = self.started_at + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            workers = self.worker_pids()
            self.workers_seen.update(workers)
            for pid in workers:
                try:
                    self.peak_start_rss_mb = max(self.peak_start_rss_mb, rss_mb(pid))
                except (OSError, AttributeError):
                    pass  # a worker that has just exited
            if len(workers) == self.workers and set(workers) <= set(self.ready_after_s):
                return
            try:
                status, pid = answering_pid(self.port, "/readyz")
            except (OSError, IndexError, ValueError):
                status, pid = 0, None
            if status == 200 and pid is not None and pid not in self.ready_after_s:
                self.ready_after_s[pid] = time.monotonic() - self.started_at
            time.sleep(0.02)
        raise GatewayNotReady(
            f"{self.name}: {len(self.ready_after_s)} of {self.workers} workers ready after {timeout_s:g} s, "
            f"{len(self.workers_seen)} worker processes started, the largest {self.peak_start_rss_mb:.0f} MB RSS"
        )

    def stop(self, *, timeout_s: float = 30) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # SIGTERM lets the workers flush usage; a gateway that hangs is killed with its whole group.
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
