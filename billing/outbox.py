"""A per-process, append-only file of usage rows, written before a response completes.

Each gateway process appends every usage row to its own segment file (one small write to the page cache)
before the client sees the end of its response, and deletes a segment only after its rows are in the
database. A process killed with SIGKILL therefore leaves its unflushed rows on disk; the next process to
start on the host (or `manage.py recover_usage_outbox`) inserts them. Inserts ignore request ids already
stored, so a segment replayed twice still yields one record per request.

A live process holds an exclusive flock on its segments; a segment nobody holds is an orphan.
"""

import fcntl
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Segment:
    path: Path
    fd: int


class Outbox:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._segment: Segment | None = None

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._segment = self._new_segment()

    def _new_segment(self) -> Segment:
        name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl"
        path = self.directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return Segment(path, fd)

    def append(self, row: dict) -> None:
        if self._segment is None:
            return
        # One write() per row: the kernel keeps it even if this process is killed right after.
        os.write(self._segment.fd, orjson.dumps(row) + b"\n")

    def rotate(self) -> Segment | None:
        """Start a new segment; the returned one holds every row appended so far."""
        if self._segment is None:
            return None
        old, self._segment = self._segment, self._new_segment()
        return old

    @staticmethod
    def retire(segment: Segment) -> None:
        try:
            os.unlink(segment.path)
        finally:
            os.close(segment.fd)

    def close(self) -> None:
        """Retire the current segment; only call once its rows are stored."""
        if self._segment is not None:
            segment, self._segment = self._segment, None
            self.retire(segment)


def read_rows(path: Path) -> list[dict]:
    rows = []
    for line in path.read_bytes().splitlines():
        try:
            rows.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            log.warning("skipping a torn line in usage outbox %s", path.name)
    return rows


def claim_orphans(directory: Path) -> Iterator[tuple[Path, list[dict]]]:
    """Yield (path, rows) for each segment no live process holds; delete it after the caller's loop body."""
    directory = Path(directory)
    if not directory.is_dir():
        return
    for path in sorted(directory.glob("*.jsonl")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its process is alive and will flush it
            if not path.exists():
                continue  # claimed and removed by another process meanwhile
            yield path, read_rows(path)
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
