"""Load for the scale bench: wrk with many distinct keys (keys.lua), and the warm-up that fills the key caches."""

import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from scale.probes import metric_total
from scale.report import Report, log

KEYS_LUA = Path(__file__).with_name("keys.lua")
CHAT_PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    non2xx: int
    requests: int


def start_wrk(
    url: str, *, keys_file: Path, connections: int, duration_s: float, model: str = "bench"
) -> subprocess.Popen:
    """wrk in the background (1 thread, as bench.sh runs it), every request with the next key of `keys_file`."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration_s:g}s", "--timeout", "10s", "-s", str(KEYS_LUA)]
    env = {**os.environ, "BENCH_KEYS_FILE": str(keys_file), "BENCH_MODEL": model}
    return subprocess.Popen([*command, url + CHAT_PATH], env=env, stdout=subprocess.PIPE, text=True)


def finish_wrk(process: subprocess.Popen, *, timeout_s: float) -> WrkResult:
    output, _ = process.communicate(timeout=timeout_s)
    line = next((line for line in output.splitlines() if line.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no RESULT line (exit {process.returncode}): {output[-500:]}")
    values = dict(re.findall(r"(\w+)=([\d.]+)", line))
    return WrkResult(
        rps=float(values["rps"]),
        p50_ms=float(values["p50_ms"]),
        p99_ms=float(values["p99_ms"]),
        errors=int(values["errors"]),
        non2xx=int(values["non2xx"]),
        requests=int(values["requests"]),
    )


def run_wrk(url: str, *, keys_file: Path, connections: int, duration_s: float) -> WrkResult:
    process = start_wrk(url, keys_file=keys_file, connections=connections, duration_s=duration_s)
    return finish_wrk(process, timeout_s=duration_s + 60)


# Of the load keys each worker must hold. One worker meets every key each pass; of two, the kernel picks which
# meets a key, so the last few reach both only by chance.
WARM_SHARE = {1: 1.0, 2: 0.99}


def warm_up(args, report: Report, gateways, keys_file: Path, *, connections: int) -> None:
    """wrk through the load keys for --warmup-s, then on in 10 s rounds until a round is all 2xx and, where the
    gateway reports tollway_key_cache_size, its workers hold (nearly) every key each: a gateway that learns keys on
    demand at a capped rate answers 429 until then, and which worker meets a key is the kernel's choice."""
    names = "+".join(g.name for g in gateways)
    log(f"warm-up {names}: at least {args.warmup_s:g} s, c={connections}, {args.load_keys} keys in turn")
    started, duration_s = time.monotonic(), args.warmup_s
    rounds, held = [], {}
    while True:
        running = [
            start_wrk(g.url, keys_file=keys_file, connections=connections, duration_s=duration_s) for g in gateways
        ]
        results = [finish_wrk(process, timeout_s=duration_s + 60) for process in running]
        rounds.append(sum(r.errors + r.non2xx for r in results))
        held = {g.name: metric_total(g.url, "tollway_key_cache_size") for g in gateways}
        is_warm = all(
            count is None or count >= WARM_SHARE.get(g.workers, 0.99) * g.workers * args.load_keys
            for g, count in zip(gateways, held.values(), strict=True)
        )
        if (rounds[-1] == 0 and is_warm) or time.monotonic() - started > args.warmup_max_s:
            break
        duration_s = 10
    report.note(
        f"warm-up {names}: {time.monotonic() - started:.0f} s over {args.load_keys} distinct keys; errors + non-2xx "
        f"per round: {rounds}; keys held (tollway_key_cache_size, all workers): {held}"
        + ("" if rounds[-1] == 0 and is_warm else " (**not warm at --warmup-max-s**)")
    )
