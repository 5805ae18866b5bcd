"""Log formatting and the per-request access line.

`JsonFormatter` writes one JSON object a line (TOLLWAY_LOG_FORMAT=json). `BackgroundStreamHandler` formats
and writes on its own thread, so the request path pays for building a LogRecord and a queue put, never for
JSON encoding or a write() to a pipe that a slow log shipper may have filled.

Imported by LOGGING while Django configures itself: standard library and orjson only.
"""

import logging
import queue
import sys
import threading
import time
from datetime import UTC, datetime

import orjson

from core.bounds import MAX_ECHO_CHARS, clip

access_log = logging.getLogger("tollway.access")

# LogRecord attributes that are plumbing, not content: everything else on a record came in through `extra`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class AccessLine:
    """One request's access line, logged as the message itself: its fields are read, and its text rendered,
    on the writer thread when the handler formats it. The request path only builds this and a LogRecord."""

    __slots__ = ("event",)

    def __init__(self, event) -> None:
        self.event = event  # closed: nothing read below changes after that

    def fields(self) -> dict:
        """What an operator needs to find and explain one request; never a key secret, prompt or reply. Strings
        are cut to bounds.MAX_ECHO_CHARS: an alias or an upstream's error code must not make a line huge."""
        event, principal = self.event, self.event.principal
        fields = {
            "request_id": event.request_id,
            "endpoint": event.endpoint,
            "key_prefix": principal.key_prefix,
            "tenant_id": principal.tenant_id,
            "team_id": principal.team_id,
            "alias": event.alias,
            "deployment": event.deployment,
            "provider": event.provider,
            "status": event.status,
            "error_type": event.error_type,
            "stream": event.stream,
            "attempts": event.attempts,
            "latency_ms": event.latency_ms,
            "ttfb_ms": event.ttfb_ms,
            "upstream_latency_ms": event.upstream_latency_ms,
            "prompt_tokens": event.prompt_tokens,
            "completion_tokens": event.completion_tokens,
        }
        for name, value in fields.items():
            if isinstance(value, str) and len(value) > MAX_ECHO_CHARS:
                fields[name] = clip(value)
        return fields

    def __str__(self) -> str:
        return " ".join(f"{name}={'' if value is None else value}" for name, value in self.fields().items())


_direct_handler: "BackgroundStreamHandler | None" = None


def log_access(event) -> None:
    if _direct_handler is not None:
        _direct_handler.defer_access_line(time.time(), event)  # ~0.3 µs: even the LogRecord is built later
    elif access_log.isEnabledFor(logging.INFO):
        # makeRecord + handle, not .info(): skips the stack walk that finds the caller's file and line, which
        # an access line does not need.
        access_log.handle(access_log.makeRecord(access_log.name, logging.INFO, "", 0, AccessLine(event), None, None))


def choose_access_path() -> None:
    """At startup: when the access logger has just the usual background handler and no filters (LOGGING as
    shipped), hand it events directly instead of LogRecords."""
    global _direct_handler
    handlers = access_log.handlers
    is_plain = access_log.isEnabledFor(logging.INFO) and not access_log.filters and len(handlers) == 1
    _direct_handler = handlers[0] if is_plain and isinstance(handlers[0], BackgroundStreamHandler) else None


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        if isinstance(record.msg, AccessLine):
            entry.update(record.msg.fields())
        else:
            entry["message"] = record.getMessage()
            for name, value in vars(record).items():
                if name not in _RECORD_ATTRIBUTES and name not in entry:
                    entry[name] = value  # what the caller passed in `extra`
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


# If stderr blocks (a stalled log shipper), drop lines rather than grow without bound: ~100 MB of records.
MAX_QUEUED = 100_000


class BackgroundStreamHandler(logging.Handler):
    """A StreamHandler whose formatting and writing happen on a daemon thread, started on first use."""

    def __init__(self, stream=None) -> None:
        super().__init__()
        self._stream = stream
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.dropped = 0  # lines refused while the stream was not keeping up

    def emit(self, record: logging.LogRecord) -> None:
        if self._thread is None:
            self._start()
        if self._queue.qsize() < MAX_QUEUED:
            self._queue.put(record)
        else:
            self.dropped += 1

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._write_forever, name="tollway-log-writer", daemon=True)
                thread.start()
                self._thread = thread

    @property
    def stream(self):
        # Looked up per write when none was given, like logging's last-resort handler: stderr may be replaced.
        return self._stream if self._stream is not None else sys.stderr

    def defer_access_line(self, created: float, event) -> None:
        if self._thread is None:
            self._start()
        if self._queue.qsize() < MAX_QUEUED:
            self._queue.put((created, event))
        else:
            self.dropped += 1

    def _access_record(self, created: float, event) -> logging.LogRecord:
        record = access_log.makeRecord(access_log.name, logging.INFO, "", 0, AccessLine(event), None, None)
        record.created, record.msecs = created, (created - int(created)) * 1000
        return record

    def _write_forever(self) -> None:
        while True:
            item = self._queue.get()
            if isinstance(item, tuple):
                item = self._access_record(*item)
                if not self.filter(item):
                    continue
            if isinstance(item, threading.Event):
                try:
                    self.stream.flush()
                except (OSError, ValueError):
                    pass  # a closed stream: nothing more to flush
                item.set()
                continue
            try:
                self.stream.write(self.format(item) + "\n")
                if self.dropped and self._queue.empty():
                    dropped, self.dropped = self.dropped, 0
                    self.stream.write(f"{dropped} log lines dropped: the log stream did not keep up\n")
            except Exception:
                self.handleError(item)

    def flush(self, timeout_s: float = 2.0) -> None:
        """Wait until every record queued so far is written (shutdown, tests)."""
        if self._thread is None or not self._thread.is_alive():
            return
        written = threading.Event()
        self._queue.put(written)
        written.wait(timeout_s)
