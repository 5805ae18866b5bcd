"""The garbage-key flood: a paced client sending new, well-formed keys, beside a good-key wrk load on the same
gateway processes. It reports what reached the database and what the good keys saw."""

import asyncio
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from portal.keys import generate_key
from scale import load, probes
from scale.key_changes import manage
from scale.report import Report, log

CHAT_PATH = load.CHAT_PATH


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


def send(ports: list[int], *, rate_per_s: float, duration_s: float, connections_per_port: int = 16) -> FloodResult:
    """`rate_per_s` requests a second, each with a new garbage key, spread over `ports`, for `duration_s`."""
    return asyncio.run(
        _flood(ports, rate_per_s=rate_per_s, duration_s=duration_s, connections_per_port=connections_per_port)
    )


def lookups_per_s(env: dict[str, str]) -> float:
    """The gateways' TOLLWAY_KEY_LOOKUPS_PER_S, as their settings resolve it (50, the issue's figure, before it
    existed)."""
    code = "from django.conf import settings; print(getattr(settings, 'TOLLWAY_KEY_LOOKUPS_PER_S', 50))"
    return float(manage(env, "shell", "-c", code))


def check(args, report: Report, gateways, keys_file: Path, *, database: str) -> None:
    connections = max(1, args.connections // len(gateways))

    def good_load():
        return [
            load.start_wrk(g.url, keys_file=keys_file, connections=connections, duration_s=args.flood_s)
            for g in gateways
        ]

    def finish(running):
        results = [load.finish_wrk(process, timeout_s=args.flood_s + 60) for process in running]
        return sum(r.requests for r in results) / args.flood_s, sum(r.errors + r.non2xx for r in results)

    log("flood: good-key warm-up, then the good load alone, then beside the garbage keys")
    load.warm_up(args, report, gateways, keys_file, connections=connections)
    with probes.TransactionWindow(database) as quiet:
        before_rps, before_errors = finish(good_load())
    counts_before = probes.lookup_counts(gateways)
    with probes.TransactionWindow(database) as flooded:
        running = good_load()
        flood = send([g.port for g in gateways], rate_per_s=args.flood_rate, duration_s=args.flood_s)
        during_rps, during_errors = finish(running)
    counts_after = probes.lookup_counts(gateways)
    statuses = ", ".join(f"{status}: {count}" for status, count in sorted(flood.statuses.items()))
    report.note(
        f"flood: {flood.sent} garbage keys in {flood.duration_s:.1f} s ({flood.rate_per_s:.0f}/s) over "
        f"{len(gateways)} processes; answers {statuses}"
    )
    transactions = f"database transactions {flooded.per_s:.0f}/s during the flood, {quiet.per_s:.0f}/s before"
    # The cap is per second of flood actually delivered (a slow machine stretches it), plus a second of slack.
    per_s = lookups_per_s(gateways[0].env)
    cap = per_s * len(gateways) * (flood.duration_s + 1)
    bound = f"<= {cap:.0f} ({per_s:g}/s per process over {flood.duration_s:.1f} s + 1 s)"
    if counts_before is None or counts_after is None:
        report.add(
            "flood: key lookups the database saw",
            bound,
            f"no tollway_key_lookups_total in /metrics; {transactions}",
            None,
        )
    else:
        delta = {result: counts_after[result] - counts_before[result] for result in probes.LOOKUP_RESULTS}
        # found and unknown are the lookups that went to the database; the others were answered from memory.
        queried = delta["found"] + delta["unknown"]
        report.add(
            "flood: key lookups the database saw (lookups_total found + unknown)",
            bound,
            f"{queried:.0f}; {transactions}",
            queried <= cap,
        )
        report.note(
            "tollway_key_lookups_total over the flood, by result: "
            + ", ".join(f"{result} {count:.0f}" for result, count in delta.items())
        )
    # Lookups of one moment share a query, at most one per 10 ms per process: the queries are bounded apart from
    # the keys.
    extra = flooded.per_s - quiet.per_s
    report.add(
        "flood: database transactions/s it added (pg_stat_database)",
        f"<= {100 * len(gateways)} (100 batched queries/s per process)",
        f"{extra:.0f} ({flooded.per_s:.0f}/s during, {quiet.per_s:.0f}/s with the good load alone)",
        extra <= 100 * len(gateways),
    )
    ratio = during_rps / before_rps if before_rps else 0.0
    report.add(
        "flood: good keys beside it (rps during / before; errors)",
        "errors 0; rps ratio reported",
        f"{ratio:.2f} ({during_rps:.0f} / {before_rps:.0f} per s); errors {during_errors} during, "
        f"{before_errors} before",
        during_errors == 0,
    )
