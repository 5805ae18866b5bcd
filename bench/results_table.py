"""The Markdown report of one bench/run.sh run: the results table, the ratios, the bar and the usage-record check.

Input: the tagged RESULT lines run.sh collects ("TARGET MODE URL c=N stream=S RESULT rps=... requests=N") and its
usage lines ("TARGET records=N wrk=N smoke=N"). Standard library only.
"""

import argparse
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

TARGET_ORDER = ("direct", "peer", "tollway", "tollway-httpx")
MODES = (("plain", "Non-streaming"), ("stream", "Streaming"))
# The acceptance bar: at 16 connections Tollway serves >= 4x the peer's requests/s with no errors, and at
# 1 connection its median latency is at most a quarter of the peer's.
MIN_RPS_RATIO_AT_16 = 4.0
MAX_P50_RATIO_AT_1 = 0.25
# bench.sh's load warms up with 16 connections before the measured points.
WARMUP_CONNECTIONS = 16

_RESULT = re.compile(r"^(?P<target>\S+) (?P<mode>\S+) \S+ c=(?P<c>\d+) stream=\d RESULT (?P<fields>.*)$")


@dataclass(frozen=True)
class Point:
    target: str
    mode: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    non2xx: int
    requests: int


def read_points(path: Path) -> dict[tuple[str, str, int], Point]:
    points = {}
    for line in path.read_text().splitlines():
        match = _RESULT.match(line.strip())
        if not match:
            continue
        fields = dict(item.split("=", 1) for item in match["fields"].split())
        point = Point(
            target=match["target"],
            mode=match["mode"],
            connections=int(match["c"]),
            rps=float(fields["rps"]),
            p50_ms=float(fields["p50_ms"]),
            p99_ms=float(fields["p99_ms"]),
            errors=int(fields["errors"]),
            non2xx=int(fields["non2xx"]),
            requests=int(fields.get("requests", 0)),
        )
        points[point.target, point.mode, point.connections] = point
    return points


def read_usage(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        target, *pairs = line.split()
        rows.append({"target": target, **{k: int(v) for k, v in (pair.split("=", 1) for pair in pairs)}})
    return rows


def _order(target: str) -> int:
    return TARGET_ORDER.index(target) if target in TARGET_ORDER else len(TARGET_ORDER)


def results_tables(points: dict) -> list[str]:
    lines = []
    for mode, heading in MODES:
        rows = sorted((p for p in points.values() if p.mode == mode), key=lambda p: (p.connections, _order(p.target)))
        if not rows:
            continue
        lines += [f"### {heading}", "", "| target | conns | RPS | p50 ms | p99 ms | errors (non-2xx) |"]
        lines.append("|---|--:|--:|--:|--:|--:|")
        for p in rows:
            lines.append(
                f"| {p.target} | {p.connections} | {p.rps:,.0f} | {p.p50_ms:.2f} | {p.p99_ms:.2f} "
                f"| {p.errors} ({p.non2xx}) |"
            )
        lines.append("")
    return lines


def _ratio(numerator: Point | None, denominator: Point | None, field: str) -> float | None:
    if numerator is None or denominator is None or not getattr(denominator, field):
        return None
    return getattr(numerator, field) / getattr(denominator, field)


def _show(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.2f}"


def ratio_lines(points: dict) -> list[str]:
    lines = ["### Ratios (within this run)", "", "| ratio | non-streaming | streaming |", "|---|--:|--:|"]
    specs = [
        ("Tollway / peer RPS at c=16", "tollway", "peer", 16, "rps"),
        ("Tollway p50 / peer p50 at c=1", "tollway", "peer", 1, "p50_ms"),
        ("Tollway / direct RPS at c=16", "tollway", "direct", 16, "rps"),
        ("Tollway (httpx) / Tollway (aiohttp) RPS at c=16", "tollway-httpx", "tollway", 16, "rps"),
        ("Tollway (httpx) / Tollway (aiohttp) p50 at c=16", "tollway-httpx", "tollway", 16, "p50_ms"),
    ]
    for label, top, bottom, conns, field in specs:
        cells = [_ratio(points.get((top, m, conns)), points.get((bottom, m, conns)), field) for m, _ in MODES]
        if any(cell is not None for cell in cells):
            lines.append(f"| {label} | {_show(cells[0])} | {_show(cells[1])} |")
    lines.append("")
    return lines


def bar_lines(points: dict) -> list[str]:
    lines = ["### Acceptance bar", ""]
    for mode, heading in MODES:
        tollway16, peer16 = points.get(("tollway", mode, 16)), points.get(("peer", mode, 16))
        tollway1, peer1 = points.get(("tollway", mode, 1)), points.get(("peer", mode, 1))
        if not (tollway16 and peer16 and tollway1 and peer1):
            continue
        rps_ratio = _ratio(tollway16, peer16, "rps")
        p50_ratio = _ratio(tollway1, peer1, "p50_ms")
        failures = tollway16.errors + tollway16.non2xx
        throughput_ok = rps_ratio is not None and rps_ratio >= MIN_RPS_RATIO_AT_16 and failures == 0
        latency_ok = p50_ratio is not None and p50_ratio <= MAX_P50_RATIO_AT_1
        lines.append(
            f"- {heading}, c=16: Tollway/peer RPS {_show(rps_ratio)} (needs >= {MIN_RPS_RATIO_AT_16:g}), "
            f"errors + non-2xx {failures} (needs 0): **{'met' if throughput_ok else 'NOT met'}**"
        )
        lines.append(
            f"- {heading}, c=1: Tollway p50 / peer p50 {_show(p50_ratio)} (needs <= {MAX_P50_RATIO_AT_1:g}): "
            f"**{'met' if latency_ok else 'NOT met'}**"
        )
    lines.append("")
    return lines


def usage_lines(points: dict, usage: list[dict]) -> list[str]:
    if not usage:
        return []
    lines = [
        "### Usage records (one per request)",
        "",
        "| Tollway run | usage records | requests counted by the client | smoke requests | difference |",
        "|---|--:|--:|--:|--:|",
    ]
    notes = []
    for row in usage:
        difference = row["records"] - row["sent"] - row["smoke"]
        lines.append(f"| {row['target']} | {row['records']} | {row['sent']} | {row['smoke']} | {difference:+d} |")
        runs = [p for p in points.values() if p.target == row["target"]]
        if not runs:  # send_exactly.py: every request finished, so nothing may differ
            verdict = "match exactly" if difference == 0 else f"**differ by {difference:+d}** (expected 0)"
            notes.append(f"- {row['target']} (send_exactly.py, every request finished): records {verdict}.")
            continue
        # wrk stops with a request in flight on each connection: Tollway answers and records it, wrk does not
        # count it. So each wrk run (the warm-ups too) may leave up to its connection count in extra records.
        in_flight = sum(p.connections for p in runs) + WARMUP_CONNECTIONS * len({p.mode for p in runs})
        if difference == in_flight:
            verdict = "exactly one request in flight per connection at each wrk stop"
        elif 0 <= difference < in_flight:
            verdict = f"within the {in_flight} requests that can be in flight at wrk's stops"
        else:
            verdict = f"**outside 0..+{in_flight}**, which requests in flight at wrk's stops cannot explain"
        notes.append(f"- {row['target']} (wrk counts, warm-ups included): {difference:+d} records; {verdict}.")
    return lines + [""] + notes + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--usage", type=Path, required=True)
    parser.add_argument("--title", default="")
    args = parser.parse_args()
    points = read_points(args.results)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"## Tollway benchmark, {when}", ""] + ([args.title, ""] if args.title else [])
    lines += results_tables(points) + ratio_lines(points) + bar_lines(points)
    lines += usage_lines(points, read_usage(args.usage))
    print("\n".join(lines).rstrip())


if __name__ == "__main__":
    main()
