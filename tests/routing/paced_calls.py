"""Many chat completions from many callers against gateway processes, at a steady pace, recorded one by one.

A caller thread takes the next call number, waits for that call's slot (call n starts no sooner than
n / per_s seconds after the start), sends it to process n % len(urls) and records what came back. The pace
makes a test's phases last long enough to span cool-down windows without sending thousands of calls more;
the shared two-core machine may run slower than the pace, never faster.
"""

import threading
import time
from dataclasses import dataclass

import httpx


@dataclass(frozen=True, slots=True)
class Answer:
    number: int
    url: str
    status: int  # 0: no HTTP answer at all (the error is in `error`)
    request_id: str
    deployment: str  # x-tollway-deployment
    attempts: int | None  # x-tollway-attempts
    route: str  # x-tollway-route
    started: float  # monotonic
    ended: float
    error: str = ""


class PacedCalls:
    def __init__(self, urls: list[str], key: str, *, body: dict, calls: int, callers: int, per_s: float) -> None:
        self.urls, self.key, self.body = urls, key, body
        self.calls, self.per_s = calls, per_s
        self.answers: list[Answer] = []
        self._next = 0
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._started = 0.0
        self._threads = [threading.Thread(target=self._caller, daemon=True) for _ in range(callers)]

    def __enter__(self) -> "PacedCalls":
        self._started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        if exc_type is not None:
            with self._lock:
                self._next = self.calls  # stop taking calls; those in flight finish
        for thread in self._threads:
            thread.join(timeout=60)

    @property
    def done(self) -> int:
        with self._lock:
            return len(self.answers)

    def wait_for(self, count: int, *, timeout_s: float) -> None:
        """Until `count` calls have been answered (or failed)."""
        with self._done:
            if not self._done.wait_for(lambda: len(self.answers) >= count, timeout=timeout_s):
                raise AssertionError(f"{len(self.answers)} of {count} calls answered after {timeout_s} s")

    def _take(self) -> int | None:
        with self._lock:
            if self._next >= self.calls:
                return None
            self._next += 1
            return self._next - 1

    def _caller(self) -> None:
        # Keep-alive connections, as an SDK client does; its own per thread (httpx.Client is not shared).
        with httpx.Client(timeout=30, headers={"authorization": f"Bearer {self.key}"}) as client:
            while (number := self._take()) is not None:
                pause = self._started + number / self.per_s - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                answer = self._call(client, number)
                with self._done:
                    self.answers.append(answer)
                    self._done.notify_all()

    def _call(self, client: httpx.Client, number: int) -> Answer:
        url = self.urls[number % len(self.urls)]
        started = time.monotonic()
        try:
            response = client.post(f"{url}/v1/chat/completions", json=self.body)
        except httpx.HTTPError as exc:
            return Answer(number, url, 0, "", "", None, "", started, time.monotonic(), error=repr(exc))
        attempts = response.headers.get("x-tollway-attempts")
        return Answer(
            number=number,
            url=url,
            status=response.status_code,
            request_id=response.headers.get("x-request-id", ""),
            deployment=response.headers.get("x-tollway-deployment", ""),
            attempts=int(attempts) if attempts and attempts.isdigit() else None,
            route=response.headers.get("x-tollway-route", ""),
            started=started,
            ended=time.monotonic(),
            error="" if response.status_code == 200 else response.text[:300],
        )
