"""Two real gateway processes on loopback, each its own uvicorn on its own port, sharing the test database and
(optionally) a redis-server of the test's own for change notifications; plus the clients an admin and a caller
would use against them.

Each process runs one worker, so every call names the process it reaches and a bound is measured per process
(two workers behind one port would let the kernel choose, and a slow worker could hide behind a fast one).
Changes are made the way users make them: over HTTP to /api/v1 (served by the first process, as by any
gateway) or with manage.py in a process of its own, never from the test process, whose writes would publish
to whatever Redis the test settings name.
"""

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
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
POLL_PAUSE_S = 0.02  # between probes: the figure is this much coarser, and the gateway is not flooded


@dataclass
class Cluster:
    gateways: list[GatewayProcess]
    redis: RedisServer | None
    env: dict[str, str] = field(default_factory=dict)  # what the gateways were given beyond the defaults

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
def running_cluster(
    tmp_path: Path, *, refresh_s: float, has_redis: bool = True, env: dict[str, str] | None = None
) -> Iterator[Cluster]:
    """Two gateway processes started together; with `has_redis`, a private redis-server as their REDIS_URL,
    else REDIS_URL empty (whatever the test process was given)."""
    redis = RedisServer().start() if has_redis else None
    gateway_env = {
        "REDIS_URL": redis.url if redis else "",
        "TOLLWAY_SNAPSHOT_REFRESH_S": str(refresh_s),
        **(env or {}),
    }
    gateways = [
        GatewayProcess(workers=1, env=gateway_env, outbox_dir=tmp_path / f"outbox-{index}") for index in range(2)
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


def chat(url: str, key: str) -> httpx.Response:
    """One chat completion on a fresh connection (httpx.post opens and closes its own)."""
    return httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {key}"}, timeout=30)


def models_status(url: str, key: str) -> int:
    """GET /v1/models on a fresh connection: authenticated like a chat call, without reaching the upstream."""
    return httpx.get(f"{url}/v1/models", headers={"authorization": f"Bearer {key}"}, timeout=30).status_code


def readiness(url: str) -> tuple[int, dict]:
    answer = httpx.get(f"{url}/readyz", timeout=10)
    return answer.status_code, answer.json()


def change_feed_of(url: str) -> dict:
    """/readyz's change_feed check: {"ok": bool, "detail": {"mode": ..., "version": ...}}."""
    _status, body = readiness(url)
    assert "change_feed" in body["checks"], f"/readyz has no change_feed check: {body}"
    return body["checks"]["change_feed"]


def seconds_until(
    urls: list[str], is_seen: Callable[[str], bool], *, since: float, timeout_s: float = GIVE_UP_AFTER_S
) -> dict[str, float | None]:
    """Probe every process at once until `is_seen(url)`; per process, the seconds from `since` (a monotonic
    time) to the first probe that saw it, or None if none did within `timeout_s`. The timeout is well past any
    bound a test asserts, so a change that is merely late reports by how much."""

    def watch(url: str) -> float | None:
        deadline = since + timeout_s
        while time.monotonic() < deadline:
            if is_seen(url):
                return time.monotonic() - since
            time.sleep(POLL_PAUSE_S)
        return None

    with ThreadPoolExecutor(len(urls)) as pool:
        return dict(zip(urls, pool.map(watch, urls), strict=True))


def within(seconds: dict[str, float | None], bound_s: float) -> bool:
    return all(s is not None and s <= bound_s for s in seconds.values())


def figures(seconds: dict[str, float | None]) -> str:
    """The measured delays, per process, for a failure message."""
    return ", ".join(f"{url}: {'never' if s is None else f'{s:.3f} s'}" for url, s in seconds.items())


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
