"""A key created through the REST API or manage.py works on its first call to every gateway process; a key
revoked through either stops working on every process soon after. Each process is its own uvicorn on its own
port, so which process answered is known exactly."""

import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from scale.report import Report, log

REPO = Path(__file__).resolve().parents[2]
CHAT_BODY = {"model": "bench", "messages": [{"role": "user", "content": "Say hello in one short sentence."}]}
BENCH_EMAIL, BENCH_PASSWORD = "scale-bench@example.com", "scale-bench-Owner-2026!"


@dataclass
class KeyTry:
    via: str  # "rest" or "command"
    first_call_status: dict[str, int] = field(default_factory=dict)  # process -> status of the key's first call
    fresh_call_statuses: Counter = field(default_factory=Counter)  # every call on a fresh connection
    revoked_after_s: dict[str, float | None] = field(default_factory=dict)  # process -> first 401 (None: never)


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {args[0]} failed: {done.stderr[-1000:]}")
    return done.stdout.strip().splitlines()[-1]


class TeamOwner:
    """The bench's team owner, calling /api/v1 with a DRF token as a script would."""

    def __init__(self, *, url: str, env: dict[str, str]) -> None:
        manage(
            env,
            "create_user",
            "--email",
            BENCH_EMAIL,
            "--password",
            BENCH_PASSWORD,
            "--tenant",
            "bench",
            "--team",
            "bench",
            "--role",
            "team_owner",
        )
        self.client = httpx.Client(base_url=url, timeout=30)
        answer = self.client.post("/api/v1/auth/token", json={"email": BENCH_EMAIL, "password": BENCH_PASSWORD})
        answer.raise_for_status()
        self.client.headers["Authorization"] = f"Token {answer.json()['token']}"
        teams = self.client.get("/api/v1/teams").raise_for_status().json()
        rows = teams["results"] if isinstance(teams, dict) else teams
        self.team_id = next(team["id"] for team in rows if team["name"] == "bench")

    def create_key(self, name: str) -> tuple[int, str]:
        answer = self.client.post("/api/v1/keys", json={"team": self.team_id, "name": name}).raise_for_status()
        return answer.json()["id"], answer.json()["secret"]

    def revoke_key(self, key_id: int) -> None:
        self.client.post(f"/api/v1/keys/{key_id}/revoke", json={}).raise_for_status()


def _call(url: str, key: str) -> int:
    # A fresh connection each time: nothing about the key may linger in a kept-alive connection.
    headers = {"Authorization": f"Bearer {key}", "Connection": "close"}
    return httpx.post(f"{url}/v1/chat/completions", json=CHAT_BODY, headers=headers, timeout=30).status_code


def _check_new_key(key: str, processes: dict[str, str], attempt: KeyTry, calls: int) -> None:
    for name, url in processes.items():
        attempt.first_call_status[name] = _call(url, key)
        attempt.fresh_call_statuses[attempt.first_call_status[name]] += 1
    urls = list(processes.values())
    for number in range(calls - len(urls)):
        attempt.fresh_call_statuses[_call(urls[number % len(urls)], key)] += 1


def _time_to_401(key: str, processes: dict[str, str], attempt: KeyTry, revoked_at: float, limit_s: float) -> None:
    """Poll every process in turn, each on its own kept-alive connection, until each has answered 401."""
    clients = {name: httpx.Client(base_url=url, timeout=10) for name, url in processes.items()}
    waiting = set(clients)
    headers = {"Authorization": f"Bearer {key}"}
    try:
        while waiting and time.monotonic() - revoked_at < limit_s:
            for name in sorted(waiting):
                if clients[name].get("/v1/models", headers=headers).status_code == 401:
                    attempt.revoked_after_s[name] = time.monotonic() - revoked_at
                    waiting.discard(name)
        for name in waiting:
            attempt.revoked_after_s[name] = None
    finally:
        for client in clients.values():
            client.close()


def run_tries(
    *,
    owner: TeamOwner,
    env: dict[str, str],
    processes: dict[str, str],
    rest_tries: int,
    command_tries: int,
    calls_per_key: int,
    limit_s: float,
) -> list[KeyTry]:
    tries = []
    for number in range(rest_tries + command_tries):
        attempt = KeyTry(via="rest" if number < rest_tries else "command")
        if attempt.via == "rest":
            key_id, key = owner.create_key(f"scale-{number}")
        else:
            key = manage(env, "create_api_key", "--team", "bench", "--tenant", "bench", "--name", f"scale-{number}")
        _check_new_key(key, processes, attempt, calls_per_key)
        if attempt.via == "rest":
            owner.revoke_key(key_id)
        else:
            manage(env, "revoke_api_key", key[:14])
        _time_to_401(key, processes, attempt, time.monotonic(), limit_s)
        tries.append(attempt)
    return tries


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile: the smallest value at least `share` of the values are <= to."""
    ordered = sorted(values)
    return ordered[max(0, -(-int(share * 1000) * len(ordered) // 1000) - 1)]


def check(args, report: Report, gateways) -> None:
    owner = TeamOwner(url=gateways[0].url, env=gateways[0].env)
    log(f"keys: {args.rest_tries} through the REST API, {args.command_tries} through manage.py")
    tries = run_tries(
        owner=owner,
        env=gateways[0].env,
        processes={g.name: g.url for g in gateways},
        rest_tries=args.rest_tries,
        command_tries=args.command_tries,
        calls_per_key=args.calls_per_key,
        limit_s=args.revoke_limit_s,
    )
    for via in ("rest", "command"):
        done = [attempt for attempt in tries if attempt.via == via]
        if not done:
            continue
        label = "REST API" if via == "rest" else "manage.py"
        first_bad = sum(status != 200 for attempt in done for status in attempt.first_call_status.values())
        calls = sum(sum(attempt.fresh_call_statuses.values()) for attempt in done)
        unauthorized = sum(attempt.fresh_call_statuses[401] for attempt in done)
        other = sum(n for a in done for status, n in a.fresh_call_statuses.items() if status not in (200, 401))
        report.add(
            f"new key ({label}, {len(done)} keys) answers its first call on each of {len(gateways)} processes",
            "every first call 200; no 401 in the fresh-connection calls",
            f"{first_bad} first calls not 200; {unauthorized} × 401 and {other} other non-200 in {calls} calls",
            first_bad == 0 and unauthorized == 0,
        )
        # A try counts once every process refuses the key: its slowest process.
        slowest = [max(a.revoked_after_s.values(), key=lambda s: float("inf") if s is None else s) for a in done]
        never = sum(seconds is None for seconds in slowest)
        seconds = [args.revoke_limit_s * 10 if s is None else s for s in slowest]
        p99, p50 = percentile(seconds, 0.99), percentile(seconds, 0.5)
        shown = f"> {args.revoke_limit_s:g} s" if never and p99 > args.revoke_limit_s else f"{p99:.3f} s"
        report.add(
            f"revoked ({label}) -> 401 on every process, p99 of {len(done)} tries",
            "<= 1 s",
            f"{shown} (p50 {p50:.3f} s, max {max(seconds):.3f} s; {never} never within {args.revoke_limit_s:g} s)",
            p99 <= 1,
        )
