"""The node's shared metrics directory: every worker process writes its own files, /metrics sums them all.

prometheus_client's multiprocess mode keeps each process's values in memory-mapped files
(`counter_<id>.db`, `histogram_<id>.db`, `gauge_<mode>_<id>.db`); a scrape, answered by whichever worker the
load balancer picked, reads every file. What the library leaves to us, done here:

- Process ids: `<pid>x<random>`, not the bare pid, so a restarted container whose worker gets the same pid
  again does not silently continue an old process's counters.
- Liveness: each process holds an exclusive flock on `live_<id>.lock` for as long as it lives (the usage
  outbox does the same with its segments). A process whose lock nobody holds is dead.
- Dead processes: their counters and histograms are added into `counter_archive.db` / `histogram_archive.db`
  (node totals never go down when a worker is replaced) and their gauges are dropped. A node that starts
  with no live worker (a deploy, a reboot) starts from zero, as any restarted Prometheus target does.

Every sweep and every read runs under `dir.lock`, so two processes never archive the same file.
"""

import fcntl
import os
import secrets
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import values
from prometheus_client.mmap_dict import MmapedDict

ARCHIVE_ID = "archive"
_identity: tuple[int, str] = (0, "")
_live_lock: tuple[str, int] | None = None  # (process id, fd)


def process_id() -> str:
    """This process's id in file names; called by prometheus_client on every write, so it stays cheap."""
    global _identity
    pid = os.getpid()
    if pid != _identity[0]:
        _identity = (pid, f"{pid}x{secrets.token_hex(4)}")
    return _identity[1]


def use_directory(directory: Path) -> None:
    """Point prometheus_client at the shared directory; must run before any metric is created."""
    directory.mkdir(parents=True, exist_ok=True)
    # The library reads the directory from this variable whenever it opens a file: it is how it is told.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    values.ValueClass = values.MultiProcessValue(process_identifier=process_id)


@contextmanager
def directory_lock(directory: Path):
    fd = os.open(directory / "dir.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _owner(path: Path) -> str:
    """`counter_<id>.db` -> id; `gauge_livesum_<id>.db` -> id; `live_<id>.lock` -> id."""
    return path.name.rsplit(".", 1)[0].rsplit("_", 1)[1]


def _is_alive(directory: Path, owner: str) -> bool:
    try:
        fd = os.open(directory / f"live_{owner}.lock", os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _merge_into_archive(directory: Path, dead_file: Path) -> None:
    kind = dead_file.name.split("_", 1)[0]
    archive = MmapedDict(str(directory / f"{kind}_{ARCHIVE_ID}.db"))
    try:
        for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(str(dead_file)):
            total, _ = archive.read_value(key)
            archive.write_value(key, total + value, 0.0)
    finally:
        archive.close()


def sweep(directory: Path, *, is_starting: bool = False) -> list[str]:
    """Fold dead processes' files into the archive (or, on a node start, drop them); call under the lock.
    Returns the ids found dead."""
    me = process_id()
    files = [p for p in directory.iterdir() if p.suffix in {".db", ".lock"} and p.name != "dir.lock"]
    owners = {_owner(p) for p in files} - {ARCHIVE_ID, me}
    dead = {owner for owner in owners if not _is_alive(directory, owner)}
    # Only a process that has written nothing yet may reset the node (a test process restarts its lifespan).
    is_node_start = is_starting and not _holds_live_lock() and not (owners - dead)
    for path in files:
        owner = _owner(path)
        if owner == ARCHIVE_ID and is_node_start:
            path.unlink(missing_ok=True)
        if owner not in dead:
            continue
        if not is_node_start and path.name.startswith(("counter_", "histogram_")):
            # A crash between these two lines would count this file twice; the window is microseconds.
            _merge_into_archive(directory, path)
        path.unlink(missing_ok=True)
    return sorted(dead)


def _holds_live_lock() -> bool:
    return _live_lock is not None and _live_lock[0] == process_id()


def claim_liveness(directory: Path) -> None:
    """Hold this process's live lock until it exits: its metric files are in use until then."""
    global _live_lock
    if _holds_live_lock():
        return
    fd = os.open(directory / f"live_{process_id()}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    _live_lock = (process_id(), fd)


def live_process_count(directory: Path) -> int:
    return sum(1 for p in directory.glob("live_*.lock") if _is_alive(directory, _owner(p)))
