"""Load for the scale bench: wrk with many distinct keys (keys.lua), and a paced flood of garbage keys."""

import asyncio
import os
import re
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from portal.keys import generate_key

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


@dataclass(frozen=True)
class FloodResult:
    sent: int
    statuses: dict[int, int]  # HTTP status -> count; 0 for a connection that failed
    duration_s: float

    @property
    def rate_per_s(self) -> float:
        return self.sent / self.duration_s


async def _send(reader, writer, port: int) -> int:
    # Well-formed keys with valid checksums, each new: a gateway cannot reject them by their shape alone.
    request = (
        f"POST {CHAT_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {generate_key()}\r\n"
        f"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
    )
    writer.write(request.encode())
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
    await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])


async def _flood(ports: list[int], *, rate_per_s: float, duration_s: float, connections_per_port: int) -> FloodResult:
    # One queue per port, so each gateway gets its share of the rate whichever answers faster.
    tickets_of = {port: asyncio.Queue() for port in ports}
    statuses: Counter[int] = Counter()

    async def connection(port: int) -> None:
        tickets = tickets_of[port]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while (await tickets.get()) >= 0:
                try:
                    statuses[await _send(reader, writer, port)] += 1
                except (OSError, asyncio.IncompleteReadError, AttributeError):
                    statuses[0] += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
        finally:
            writer.close()

    workers = [asyncio.create_task(connection(port)) for port in ports for _ in range(connections_per_port)]
    started = time.monotonic()
    sent = 0
    # Tickets at the rate, in 10 ms steps; a gateway that falls behind makes the queue grow, not the rate drop.
    while (elapsed := time.monotonic() - started) < duration_s:
        due = int(elapsed * rate_per_s) - sent
        for number in range(sent, sent + due):
            tickets_of[ports[number % len(ports)]].put_nowait(1)
        sent += due
        await asyncio.sleep(0.01)
    for tickets in tickets_of.values():
        for _ in range(connections_per_port):
            tickets.put_nowait(-1)
    await asyncio.wait_for(asyncio.gather(*workers), timeout=60)
    return FloodResult(sent=sent, statuses=dict(statuses), duration_s=time.monotonic() - started)


def flood(ports: list[int], *, rate_per_s: float, duration_s: float, connections_per_port: int = 16) -> FloodResult:
    """`rate_per_s` requests a second, each with a new garbage key, spread over `ports`, for `duration_s`."""
    return asyncio.run(
        _flood(ports, rate_per_s=rate_per_s, duration_s=duration_s, connections_per_port=connections_per_port)
    )
