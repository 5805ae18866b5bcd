"""Two real gateway processes on loopback, each its own uvicorn on its own port, sharing the test database and
(optionally) a redis-server of the test's own for change notifications; plus the clients an admin and a caller
would use against them.

Each process runs one worker, so every call names the process it reaches and a bound is measured per process
(two workers behind one port would let the kernel choose, and a slow worker could hide behind a fast one).
The changes under test are made the way users make them: over HTTP to /api/v1 (served by the first process,
as by any gateway) or with manage.py in a process of its own. Never from the test process: its writes would
publish to whatever Redis the test settings name. (What it writes, it writes before the processes start.)
"""

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
from rest_framework.authtoken.models import Token

from portal.models import Membership, Subscription, Team
from routing.models import ModelAlias
from tests.gateway_process import REPO, GatewayProcess, database_url
from tests.portal.factories import MembershipFactory, ProductFactory, SubscriptionFactory
from tests.redis_server import RedisServer
from tests.upstreams.server import free_port

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
# The bound the issue sets for a change to reach every process while Redis carries the notifications.
NOTIFY_BOUND_S = 1.0
# Long enough that the periodic read cannot be what delivers a change inside NOTIFY_BOUND_S.
LONG_REFRESH_S = 30.0
# Where the periodic read is what must deliver a change: short, so the tests are too.
SHORT_REFRESH_S = 0.5
# A change committed just after a read began waits for that read, the interval, and the next read; each read is
# one feed query and the rows that changed, on a database thread the usage writer also uses. Half a second
# covers both reads with room for the shared two-core machine, and is still short of a second interval.
PERIODIC_BOUND_S = SHORT_REFRESH_S + 0.5
GIVE_UP_AFTER_S = 5.0  # probing stops: a change this late reports "never" with the bound it missed
POLL_PAUSE_S = 0.05  # between probes: the figure is this much coarser, and the gateway is not flooded


@dataclass
class Cluster:
    gateways: list[GatewayProcess]
    redis: RedisServer | None  # the gateways' REDIS_URL, when they have one
    env: dict[str, str]  # what the gateways were given beyond the test process's environment

    @property
    def urls(self) -> list[str]:
        return [gateway.url for gateway in self.gateways]

    @property
    def api_url(self) -> str:
        return self.gateways[0].url

    def manage(self, *arguments: str, redis_url: str | None = None) -> str:
        """Run manage.py in a process of its own, configured like the gateways (or with `redis_url` for
        notifications instead); its stdout."""
        env = {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": self.env["REDIS_URL"]}
        if redis_url is not None:
            env["REDIS_URL"] = redis_url
        done = subprocess.run(
            [sys.executable, "manage.py", *arguments], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"manage.py {' '.join(arguments)} failed:\n{done.stderr}"
        return done.stdout.strip()


@contextmanager
def running_cluster(tmp_path: Path, *, refresh_s: float, has_redis: bool = True) -> Iterator[Cluster]:
    """Two gateway processes started together; with `has_redis`, a private redis-server as their REDIS_URL,
    else REDIS_URL empty (whatever the test process was given)."""
    redis = RedisServer().start() if has_redis else None
    gateway_env = {
        "REDIS_URL": redis.url if redis else "",
        "TOLLWAY_SNAPSHOT_REFRESH_S": str(refresh_s),
        "TOLLWAY_ACCESS_LOG": "0",  # hundreds of probes; their lines would only cost the shared CPU
    }
    gateways = [
        GatewayProcess(
            workers=1,
            # Metrics of its own, as on a host of its own: in one directory the two would be summed as one node's.
            # (The data directory stays shared: it holds the key pepper both must hash with.)
            env={**gateway_env, "TOLLWAY_METRICS_DIR": str(tmp_path / f"metrics-{index}")},
            outbox_dir=tmp_path / f"outbox-{index}",
        )
        for index in range(2)
    ]
    try:
        # Started side by side: each takes a few seconds of Django set-up and a full snapshot build.
        with ThreadPoolExecutor(len(gateways)) as pool:
            list(pool.map(GatewayProcess.start, gateways))
        yield Cluster(gateways=gateways, redis=redis, env=gateway_env)
    finally:
        for gateway in gateways:
            if gateway.process is not None and gateway.process.poll() is None:
                gateway.terminate()
        if redis is not None:
            redis.stop()


def unused_redis_url() -> str:
    """A Redis URL nothing listens on: a writer given it commits but cannot publish."""
    return f"redis://127.0.0.1:{free_port()}/0"


# --- What a caller sees -----------------------------------------------------------------------------------------


_clients = threading.local()


def _fresh_connections() -> httpx.Client:
    """This thread's client that keeps no connection alive: every call opens its own, as a new caller's would.
    (A new httpx.Client per call would too, but costs ~70 ms of the test's CPU to build, which the probes' figures
    and the shared machine would pay.)"""
    if not hasattr(_clients, "client"):
        _clients.client = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=30)
    return _clients.client


def chat(url: str, key: str) -> httpx.Response:
    """One chat completion on a fresh connection."""
    headers = {"authorization": f"Bearer {key}"}
    return _fresh_connections().post(f"{url}/v1/chat/completions", json=CHAT, headers=headers)


def models_status(url: str, key: str) -> int:
    """GET /v1/models on a fresh connection: authenticated like a chat call, without reaching the upstream."""
    return _fresh_connections().get(f"{url}/v1/models", headers={"authorization": f"Bearer {key}"}).status_code


def refuses(key: str) -> Callable[[str], bool]:
    """For FirstSeen: does the process answer this key 401?"""
    return lambda url: models_status(url, key) == 401


def readiness(url: str) -> tuple[int, dict]:
    answer = _fresh_connections().get(f"{url}/readyz")
    return answer.status_code, answer.json()


def change_feed_of(url: str) -> dict:
    """/readyz's change_feed check: {"ok": bool, "detail": {"mode": ..., "version": ...}}."""
    _status, body = readiness(url)
    assert "change_feed" in body["checks"], f"/readyz has no change_feed check: {body}"
    return body["checks"]["change_feed"]


def metric(url: str, series: str) -> float:
    """One sample from the process's /metrics (Prometheus text), by its series as written there:
    `tollway_key_cache_size`, `tollway_key_lookups_total{result="found"}`."""
    for line in _fresh_connections().get(f"{url}/metrics").text.splitlines():
        if line.startswith(f"{series} "):
            return float(line.split()[-1])
    raise AssertionError(f"{url}/metrics has no {series}")


class FirstSeen:
    """`with FirstSeen(urls, is_seen) as seen:` probes every process from the moment the block is entered
    until `is_seen(url)`, so a change is caught however soon it lands, even before the call that made it has
    returned (a manage.py process, say, takes a while to exit after its commit). After the block the probes go
    on for up to `timeout_s`; well past any bound a test asserts, so a change that is merely late reports by
    how much."""

    def __init__(self, urls: list[str], is_seen: Callable[[str], bool], *, timeout_s: float = GIVE_UP_AFTER_S):
        self._is_seen, self._timeout_s = is_seen, timeout_s
        self.seen_at: dict[str, float | None] = dict.fromkeys(urls)  # monotonic time of the first probe that saw it
        self._deadline = float("inf")  # set when the block ends
        self._is_stopping = threading.Event()
        self._errors: list[BaseException] = []
        self._threads = [threading.Thread(target=self._watch, args=(url,), daemon=True) for url in urls]

    def _watch(self, url: str) -> None:
        try:
            while not self._is_stopping.is_set() and time.monotonic() < self._deadline:
                if self._is_seen(url):
                    self.seen_at[url] = time.monotonic()
                    return
                time.sleep(POLL_PAUSE_S)
        except BaseException as exc:  # raised again in the test's thread
            self._errors.append(exc)

    def __enter__(self) -> "FirstSeen":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        if exc_type is not None:
            self._is_stopping.set()
        self._deadline = time.monotonic() + self._timeout_s
        for thread in self._threads:
            thread.join()
        if self._errors and exc_type is None:
            raise self._errors[0]

    def seconds_since(self, moment: float) -> dict[str, float | None]:
        """Per process, from `moment` (monotonic) to the first probe that saw it; None if none did."""
        return {url: None if at is None else at - moment for url, at in self.seen_at.items()}


def monotonic_at(moment: datetime) -> float:
    """A wall-clock moment written by another process (a row's timestamp), on this process's monotonic clock."""
    return time.monotonic() - (time.time() - moment.timestamp())


def figures(seconds: dict[str, float | None]) -> str:
    """The measured delays, per process."""
    return ", ".join(f"{url}: {'never' if s is None else f'{s:.3f} s'}" for url, s in seconds.items())


def assert_within(bound_s: float, measured: dict[str, dict[str, float | None]]) -> None:
    """Every delay measured (what was measured -> per process) is at most `bound_s`. The figures are printed
    either way (pytest -rP shows them) and named in the failure."""
    report = "; ".join(f"{what}: {figures(seconds)}" for what, seconds in measured.items())
    print(f"bound {bound_s:g} s; {report}")
    late = [s for seconds in measured.values() for s in seconds.values() if s is None or s > bound_s]
    assert not late, f"over the bound of {bound_s:g} s: {report}"


# --- What an admin uses -----------------------------------------------------------------------------------------


def admin_api(url: str, token: str) -> httpx.Client:
    """A client of /api/v1 signed in with a DRF token, as a script would be."""
    return httpx.Client(base_url=f"{url}/api/v1", headers={"authorization": f"Token {token}"}, timeout=30)


def ok(response: httpx.Response, status: int = 200) -> dict:
    assert response.status_code == status, f"{response.request.method} {response.url}: {response.text}"
    return response.json()


# --- The portal the changes are made in --------------------------------------------------------------------------


@dataclass(frozen=True)
class Portal:
    """A tenant admin (and their API token) over a team with an active subscription to gpt-4o-mini."""

    team: Team
    subscription: Subscription
    admin_token: str


def make_portal(team: Team) -> Portal:
    admin = MembershipFactory(team=None, tenant=team.tenant, role=Membership.Role.TENANT_ADMIN).user
    product = ProductFactory(aliases=[ModelAlias.objects.get(name="gpt-4o-mini")], requires_approval=False)
    subscription = SubscriptionFactory(team=team, product=product, status=Subscription.Status.ACTIVE)
    return Portal(team=team, subscription=subscription, admin_token=Token.objects.create(user=admin).key)
