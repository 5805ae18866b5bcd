"""A per-process, append-only file of usage rows, written before a response completes.

Each gateway process appends every usage row to its current segment file (one write() to the page cache)
before the client sees the end of its response, and deletes a segment only after its rows are in the
database. A process killed with SIGKILL therefore leaves its unstored rows on disk; the next process to
start on the host (or `manage.py recover_usage_outbox`) inserts them. Inserts ignore request ids already
stored, so a segment replayed twice still yields one record per request.

A live process holds an exclusive flock on each of its segments; a segment nobody holds is an orphan.

Open files are bounded whatever happens to the database: one current segment, at most MAX_SEALED sealed
ones awaiting storage, and one transient read. A sealed segment is created only when the previous ones are
stored (or when a failed write leaves the current one's tail unusable), never once per retry.

A segment may keep a copy of its rows in memory so storing them needs no read; the copy is dropped when it
grows past `memory_rows` (a long database outage) and the rows are read back from the file instead. Only
durable rows are ever in that copy, so dropping it loses nothing.
"""

import fcntl
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

log = logging.getLogger(__name__)

# A failed write seals its segment (its tail may be torn); past this many sealed segments the writer keeps
# new rows in memory instead of opening more files, until storing catches up.
MAX_SEALED = 4


@dataclass(slots=True, eq=False)
class Segment:
    path: Path
    fd: int
    rows: int = 0  # final rows appended (provisional ones are not billable on their own)
    first_row_at: float | None = None  # monotonic time of the first final row, for the backlog's age
    cached: list[dict] | None = field(default_factory=list)  # None once dropped: read the file instead
    stored_rows: int = 0  # final rows of a sealed segment already stored (a drain interrupted half-way)
    stored_offset: int = 0  # ...and the byte offset to resume reading from

    @property
    def unstored_rows(self) -> int:
        return self.rows - self.stored_rows


class Outbox:
    def __init__(self, directory: Path, *, memory_rows: int = 10_000) -> None:
        self.directory = Path(directory)
        self.memory_rows = memory_rows
        self.clock = time.monotonic  # when rows were appended: the backlog's age (the writer shares its clock)
        self.current: Segment | None = None
        self.sealed: list[Segment] = []  # oldest first

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.current = self._new_segment()

    def _new_segment(self) -> Segment:
        name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl"
        path = self.directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        return Segment(path, fd)

    def append(self, row: dict, *, is_provisional: bool = False) -> bool:
        """Write one row; True once it is on disk (it then survives this process being killed), False if not:
        the caller must keep the row itself."""
        segment = self.current
        if segment is None:
            return False
        if not _write_line(segment, orjson.dumps(row) + b"\n"):
            # Its last line may be half written: nothing more goes after it. Store what it holds, then retire it.
            log.warning("usage outbox segment %s could not be written; sealing it", segment.path.name)
            self.current = None
            self.sealed.append(segment)
            return False
        if not is_provisional:
            segment.rows += 1
            if segment.first_row_at is None:
                segment.first_row_at = self.clock()
        if segment.cached is not None:
            segment.cached.append(row)
            if len(segment.cached) > self.memory_rows:
                segment.cached = None  # durable on disk: read back when the database returns
        return True

    def rotate(self, *, carry: list[dict] = ()) -> Segment | None:
        """Seal the current segment and start a new one holding copies of `carry` (the provisional rows of
        streams still open, so retiring the sealed one never loses them). Raises OSError with nothing changed
        if the new segment cannot be opened or written (EMFILE, ENOSPC): the rows stay where they are."""
        new = self._new_segment()
        for row in carry:
            if not _write_line(new, orjson.dumps(row) + b"\n"):
                self._discard(new)
                raise OSError("could not carry open streams' rows into a new usage outbox segment")
            new.cached.append(row)
        old, self.current = self.current, new
        if old is not None:
            self.sealed.append(old)
        return old

    def seal(self) -> None:
        """Seal the current segment without opening another (shutdown: nothing more will be appended)."""
        if self.current is not None:
            self.sealed.append(self.current)
            self.current = None

    def reopen(self, *, carry: list[dict] = ()) -> bool:
        """After a failed write: open a new current segment, unless too many are sealed already."""
        if self.current is not None:
            return True
        if len(self.sealed) >= MAX_SEALED:
            return False
        try:
            self.rotate(carry=carry)
        except OSError as exc:
            log.debug("usage outbox still cannot open a segment: %s", exc)
            return False
        return True

    def retire(self, segment: Segment) -> None:
        """Delete a sealed segment; only once all its rows are stored."""
        self.sealed.remove(segment)
        self._discard(segment)

    @staticmethod
    def _discard(segment: Segment) -> None:
        try:
            os.unlink(segment.path)
        finally:
            os.close(segment.fd)

    def unstored_rows(self) -> int:
        segments = [*self.sealed, self.current] if self.current is not None else self.sealed
        return sum(s.unstored_rows for s in segments)

    def oldest_row_at(self) -> float | None:
        segments = [*self.sealed, self.current] if self.current is not None else self.sealed
        return min((s.first_row_at for s in segments if s.unstored_rows and s.first_row_at), default=None)

    def close(self) -> None:
        """Retire every segment; only call once all their rows are stored."""
        for segment in list(self.sealed):
            self.retire(segment)
        if self.current is not None:
            segment, self.current = self.current, None
            self._discard(segment)

    def release(self) -> None:
        """Close the files but keep them (rows not stored yet): the next process recovers them."""
        for segment in [*self.sealed, *([self.current] if self.current else [])]:
            os.close(segment.fd)
        self.sealed, self.current = [], None


def _write_line(segment: Segment, line: bytes) -> bool:
    # One write() per row: the kernel keeps it even if this process is killed right after. A short write
    # (disk full) leaves a torn line that readers skip.
    try:
        return os.write(segment.fd, line) == len(line)
    except OSError as exc:
        log.debug("usage outbox write failed: %s", exc)
        return False


def read_batch(path: Path, *, offset: int, limit: int) -> tuple[list[dict], int]:
    """Up to `limit` rows of a segment nobody appends to any more, from byte `offset`; and the offset after them.
    A last line without its newline is a write cut short: skipped."""
    rows: list[dict] = []
    with open(path, "rb") as file:
        file.seek(offset)
        while len(rows) < limit:
            line = file.readline()
            if not line:
                break
            if not line.endswith(b"\n"):
                log.warning("skipping a torn line in usage outbox %s", path.name)
                offset += len(line)
                break
            offset += len(line)
            try:
                rows.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                log.warning("skipping a torn line in usage outbox %s", path.name)
    return rows, offset


def read_batches(path: Path, *, limit: int) -> Iterator[list[dict]]:
    offset = 0
    while True:
        rows, offset = read_batch(path, offset=offset, limit=limit)
        if not rows:
            return
        yield rows


def read_rows(path: Path) -> list[dict]:
    return [row for batch in read_batches(path, limit=10_000) for row in batch]


def claim_orphans(directory: Path) -> Iterator[Path]:
    """Yield each segment no live process holds, locked by us; delete it after the caller's loop body."""
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
                continue  # its process is alive and will store it
            if not path.exists():
                continue  # claimed and removed by another process meanwhile
            yield path
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
