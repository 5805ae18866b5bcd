"""Celery beat's schedule (CELERY_BEAT_SCHEDULE), run inside the gateway when there is no broker.

On the embedded default (`make run`, no REDIS_URL or CELERY_BROKER_URL) Celery runs tasks inline and no beat
process exists, so nothing would aggregate usage, purge old records or reconcile budgets: the dashboards would
stay at whatever the last reader of the usage summary happened to aggregate. Each gateway process calls
`start()` from its lifespan; the schedule then runs on a thread of its own, never on the event loop.

With several WORKERS only one process runs it at a time: the one holding an exclusive flock on
DATA_DIR/embedded-beat.lock. The others retry the lock every LEADER_RETRY_S, so when the holder exits (or is
killed: the kernel drops its lock) another takes over with every task due at once. The tasks themselves are
safe to run twice and concurrently (aggregation locks each bucket, and SQLite transactions are IMMEDIATE), so
the lock only saves repeated work; it is not what keeps the figures right.
"""

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connections

log = logging.getLogger(__name__)

# How often a process that is not running the schedule checks whether the one that was has gone.
LEADER_RETRY_S = 5.0
# A stop waits this long for a task in progress (a large first aggregation) before the process moves on; the
# thread is a daemon, and each task's transactions leave the database consistent if it is cut short.
STOP_TIMEOUT_S = 10.0


def is_wanted() -> bool:
    """Only without a broker: with one, Celery beat and a worker run the schedule."""
    return settings.CELERY_TASK_ALWAYS_EAGER and settings.TOLLWAY_EMBEDDED_BEAT


def run_celery_task(task: str) -> None:
    from config.celery import app

    # What a worker does at start: import the apps' tasks modules (autodiscovery is lazy).
    app.loader.import_default_modules()
    app.tasks[task]()  # a direct call: inline, without the per-run INFO lines of apply()


class EmbeddedBeat:
    """Runs each entry of a beat schedule ({"name": {"task": "dotted.name", "schedule": seconds}}) every
    `schedule` seconds, the first time as soon as this process holds the lock."""

    def __init__(
        self,
        *,
        schedule: dict,
        lock_path: Path,
        run_task: Callable[[str], None] = run_celery_task,
        leader_retry_s: float = LEADER_RETRY_S,
    ) -> None:
        self._entries = [(name, entry["task"], float(entry["schedule"])) for name, entry in schedule.items()]
        self._lock_path = lock_path
        self._run_task = run_task
        self._leader_retry_s = leader_retry_s
        self._lock_fd: int | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def is_leader(self) -> bool:
        return self._lock_fd is not None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tollway-embedded-beat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_TIMEOUT_S)
            if self._thread.is_alive():
                log.warning("embedded beat: a task was still running at shutdown; the process exits without it")

    def _run(self) -> None:
        try:
            due = {}
            while not self._stopping.is_set():
                if not self._take_lock():
                    self._stopping.wait(self._leader_retry_s)
                    continue
                now = time.monotonic()
                for name, task, every_s in self._entries:
                    if self._stopping.is_set():
                        break
                    if due.setdefault(name, now) <= now:
                        self._run_one(name, task)
                        # From the end of the run: a slow run is not followed by a burst of catch-up runs.
                        due[name] = time.monotonic() + every_s
                if due:
                    self._stopping.wait(max(0.0, min(due.values()) - time.monotonic()))
        finally:
            self._release_lock()
            connections.close_all()

    def _run_one(self, name: str, task: str) -> None:
        close_old_connections()
        try:
            self._run_task(task)
        except Exception:
            # A failed run is retried at its next time, as beat would; the process keeps serving.
            log.exception("embedded beat: %s (%s) failed", name, task)
        finally:
            close_old_connections()

    def _take_lock(self) -> bool:
        if self._lock_fd is not None:
            return True
        try:
            self._lock_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            # A read-only data directory must not kill the thread: say so once per retry and keep trying.
            log.error("embedded beat: cannot open %s (%s); the schedule waits for it", self._lock_path, exc)
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            os.close(fd)  # closing the only descriptor drops the flock


_running: EmbeddedBeat | None = None


def start() -> EmbeddedBeat | None:
    """Start the schedule in this process if there is no broker (see module docstring); None otherwise."""
    global _running
    if not is_wanted() or _running is not None:
        return _running
    _running = EmbeddedBeat(
        schedule=settings.CELERY_BEAT_SCHEDULE, lock_path=Path(settings.DATA_DIR) / "embedded-beat.lock"
    )
    _running.start()
    return _running


def stop() -> None:
    """Blocking (joins the thread): call it through a thread from async code."""
    global _running
    if _running is not None:
        beat, _running = _running, None
        beat.stop()
