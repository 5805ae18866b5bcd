"""Tollway at control-plane scale (issue 10): a million keys, ten thousand teams and a thousand aliases in
PostgreSQL, against the same harness on an almost empty database, in one run. See bench/README.md, "Scale".

    .venv/bin/python bench/scale.py                       # build both databases, then every check
    .venv/bin/python bench/scale.py --skip-build --only rss,idle,startup,rps

Checks (--only): startup, rss, idle, rps (2 gateway processes: one uvicorn --workers 2 per database), keys
(create and revoke through the REST API and manage.py, two single-worker gateways on two ports), flood (garbage
keys beside a good-key load, the same two gateways). The table goes to stdout and bench/results/scale-<ts>.md.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scale import builder, flood, key_changes, load, processes  # noqa: E402
from scale.probes import metric_total  # noqa: E402
from scale.report import Report, log  # noqa: E402

FULL_DB, EMPTY_DB = "tollway_scale", "tollway_scale_empty"
REDIS_URL = "redis://127.0.0.1:6379/9"
# A fixed pepper: the load keys in the keys file stay valid across runs with --skip-build.
PEPPER = "scale-bench-pepper-not-a-secret"
CHECKS = ("startup", "rss", "idle", "rps", "keys", "flood")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shape = parser.add_argument_group("the database")
    shape.add_argument("--keys", type=int, default=1_000_000, help="API keys in the full database (1,000,000)")
    shape.add_argument("--teams", type=int, default=10_000, help="teams (10,000), 100 to a tenant")
    shape.add_argument("--aliases", type=int, default=1_000, help="model aliases, one deployment each (1,000)")
    shape.add_argument("--load-keys", type=int, default=5_000, help="distinct keys in the load, both databases")
    shape.add_argument(
        "--load-teams",
        type=int,
        default=0,
        help="teams the load keys belong to (0: every team, so 5,000 keys in use span 5,000 teams: the worst case "
        "for per-team state; 500: ten keys a team)",
    )
    shape.add_argument("--skip-build", action="store_true", help="reuse both databases and the keys file")
    shape.add_argument("--build-only", action="store_true", help="build both databases, then stop")
    run = parser.add_argument_group("the run")
    run.add_argument("--only", default=",".join(CHECKS), help=f"comma-separated checks: {','.join(CHECKS)}")
    run.add_argument("--warmup-s", type=float, default=30, help="wrk warm-up per gateway, c=16, every load key")
    run.add_argument(
        "--warmup-max-s",
        type=float,
        default=420,
        help="keep warming while any answer is not 2xx (keys learnt at a capped rate), up to this",
    )
    run.add_argument("--idle-s", type=float, default=30, help="idle window for CPU time")
    run.add_argument("--rps-s", type=float, default=8, help="seconds per measured wrk round")
    run.add_argument("--rps-rounds", type=int, default=6, help="rounds per database, alternating")
    run.add_argument("--connections", type=int, default=16, help="wrk connections for requests/s")
    run.add_argument("--rest-tries", type=int, default=100, help="keys created and revoked through the REST API")
    run.add_argument("--command-tries", type=int, default=10, help="keys created and revoked through manage.py")
    run.add_argument("--calls-per-key", type=int, default=20, help="fresh-connection calls per new key")
    run.add_argument("--revoke-limit-s", type=float, default=5, help="give up waiting for a 401 after this")
    run.add_argument("--flood-rate", type=float, default=1000, help="garbage keys a second, all processes")
    run.add_argument("--flood-s", type=float, default=10, help="flood duration")
    run.add_argument("--ready-timeout-s", type=float, default=180, help="give up on a gateway start after this")
    run.add_argument("--state-dir", type=Path, default=REPO / "var" / "bench-scale", help="keys, logs, data")
    run.add_argument("--port-base", type=int, default=8300, help="gateways on base..base+11, upstream on base+90")
    args = parser.parse_args()
    args.only = [check.strip() for check in args.only.split(",") if check.strip()]
    if unknown := set(args.only) - set(CHECKS):
        parser.error(f"unknown checks: {', '.join(sorted(unknown))}")
    return args


def gateway_env(args: argparse.Namespace, name: str, database: str) -> dict[str, str]:
    state = args.state_dir / name
    # Metrics files from an earlier process would be summed into this one's /metrics.
    shutil.rmtree(state / "metrics", ignore_errors=True)
    (state / "metrics").mkdir(parents=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith("TOLLWAY_")}
    return env | {
        "DATABASE_URL": builder.database_url(database),
        "REDIS_URL": REDIS_URL,
        "TOLLWAY_KEY_PEPPER": PEPPER,
        "TOLLWAY_DATA_DIR": str(state / "data"),
        "TOLLWAY_METRICS_DIR": str(state / "metrics"),
        "TOLLWAY_USAGE_OUTBOX_DIR": str(state / "outbox"),
        "TOLLWAY_ALLOW_LOOPBACK_UPSTREAMS": "1",
        "BENCH_SCALE_UPSTREAM_KEY": "sk-canned-upstream-ignores-it",
    }


def build(args: argparse.Namespace, report: Report, upstream_url: str) -> Path:
    keys_file = args.state_dir / "load-keys.txt"
    if args.skip_build:
        if not keys_file.exists():
            raise SystemExit(f"--skip-build: {keys_file} is missing; build first")
        built = (args.state_dir / "shape.txt").read_text().strip() if (args.state_dir / "shape.txt").exists() else "?"
        # The code may have new migrations since the build: a gateway on an older schema fails every key lookup.
        for database in (FULL_DB, EMPTY_DB):
            builder.migrate(database, gateway_env(args, "build", database))
        report.note(
            f"databases reused (--skip-build), built as {built}; rows in {FULL_DB}: {builder.row_counts(FULL_DB)}"
        )
        return keys_file
    env = gateway_env(args, "build", FULL_DB)
    load_keys = builder.make_load_keys(args.load_keys, pepper=PEPPER)
    keys_file.write_text("".join(f"{key}\n" for key, _ in load_keys))
    for database, shape in [
        (
            FULL_DB,
            builder.Shape(
                keys=args.keys,
                teams=args.teams,
                aliases=args.aliases,
                load_keys=args.load_keys,
                load_teams=args.load_teams,
            ),
        ),
        (EMPTY_DB, builder.Shape(keys=args.load_keys, teams=1, aliases=2, load_keys=args.load_keys)),
    ]:
        log(f"building {database}: {shape}")
        started = time.monotonic()
        timings = builder.build(database, shape, load_keys, upstream_url=upstream_url, env=env)
        steps = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in timings.items())
        if database == FULL_DB:
            (args.state_dir / "shape.txt").write_text(f"{shape}\n")
        report.note(f"built {database} in {time.monotonic() - started:.1f} s ({steps}): {builder.row_counts(database)}")
    return keys_file


def start_gateway(args: argparse.Namespace, name: str, database: str, port: int, workers: int):
    gateway = processes.Gateway(
        name=name,
        port=port,
        workers=workers,
        env=gateway_env(args, name, database),
        log_path=args.state_dir / f"{name}.log",
    )
    log(f"starting {name} ({database}, {workers} worker(s), port {port})")
    gateway.start()
    try:
        gateway.wait_ready(timeout_s=args.ready_timeout_s)
    except BaseException:
        gateway.stop()
        raise
    return gateway


def check_scale(args, report: Report, keys_file: Path) -> None:
    """startup, rss, idle and rps: one uvicorn --workers 2 on each database, side by side."""
    try:
        full = start_gateway(args, "full", FULL_DB, args.port_base, 2)
    except processes.GatewayNotReady as exc:
        # Today's code on a million keys: the supervisor's 5 s health check kills workers busy building.
        report.add("start-up to ready (start -> /readyz 200 from every worker)", "<= 10 s", str(exc), False)
        log(f"{exc}: skipping rss, idle and rps")
        return
    try:
        empty = start_gateway(args, "empty", EMPTY_DB, args.port_base + 1, 2)
    except BaseException:
        full.stop()
        raise
    try:
        ready = {name: max(g.ready_after_s.values()) for name, g in (("full", full), ("empty", empty))}
        if "startup" in args.only:
            each = ", ".join(f"{seconds:.1f} s" for seconds in full.ready_after_s.values())
            report.add(
                "start-up to ready (start -> /readyz 200 from every worker)",
                "<= 10 s",
                f"{ready['full']:.1f} s (workers: {each}; empty database {ready['empty']:.1f} s)",
                ready["full"] <= 10,
            )
        # Both at once: learning keys is bounded by the lookup cap per process, not by CPU.
        load.warm_up(args, report, [full, empty], keys_file, connections=16)
        if "rss" in args.only:
            rss = {pid: processes.rss_mb(pid) for pid in full.worker_pids()}
            empty_rss = [processes.rss_mb(pid) for pid in empty.worker_pids()]
            cached = metric_total(full.url, "tollway_key_cache_size")
            report.add(
                f"RSS per gateway process after warm-up ({args.load_keys} keys in use)",
                "<= 150 MB",
                f"max {max(rss.values()):.0f} MB ({', '.join(f'{mb:.0f}' for mb in rss.values())}; "
                f"empty database {', '.join(f'{mb:.0f}' for mb in empty_rss)})",
                max(rss.values()) <= 150,
            )
            report.note(
                f"largest worker RSS before the warm-up (at /readyz 200): full {full.peak_start_rss_mb:.0f} MB, "
                f"empty {empty.peak_start_rss_mb:.0f} MB; "
                f"supervisor RSS {processes.rss_mb(full.process.pid):.0f} MB (not a gateway process); "
                f"keys held by the full database's workers together: {cached}"
            )
        if "idle" in args.only:
            check_idle(args, report, full, empty)
        if "rps" in args.only:
            check_rps(args, report, full, empty, keys_file)
    finally:
        full.stop()
        empty.stop()


def check_idle(args, report: Report, full, empty) -> None:
    # Idle starts once the warm-up's usage rows are stored: a flush in the window is work, not idling.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and any(metric_total(g.url, "tollway_usage_queue_rows") for g in (full, empty)):
        time.sleep(0.5)
    time.sleep(2)
    log(f"idle: {args.idle_s:g} s without requests or changes")
    pids = {gateway.name: gateway.all_pids() for gateway in (full, empty)}
    before = {pid: processes.cpu_ticks(pid) for group in pids.values() for pid in group}
    started = time.monotonic()
    time.sleep(args.idle_s)
    elapsed = time.monotonic() - started
    used = {pid: (processes.cpu_ticks(pid) - ticks) / processes.CLOCK_TICKS_PER_S for pid, ticks in before.items()}
    share = {name: 100 * sum(used[pid] for pid in group) / elapsed for name, group in pids.items()}
    per_process = ", ".join(f"{100 * used[pid] / elapsed:.2f}%" for pid in pids["full"])
    report.add(
        "idle CPU, all gateway processes together (supervisor + 2 workers)",
        "<= 2% of a core",
        f"{share['full']:.2f}% over {elapsed:.0f} s ({per_process}; empty database {share['empty']:.2f}%)",
        share["full"] <= 2,
    )


def check_rps(args, report: Report, full, empty, keys_file: Path) -> None:
    requests, failed, cpu_s, database_s = ({"full": 0, "empty": 0} for _ in range(4))
    rounds = []
    for number in range(args.rps_rounds):
        # ABBA order spreads the machine's drift over both databases alike.
        order = (full, empty) if number % 2 == 0 else (empty, full)
        for gateway in order:
            ticks = {pid: processes.cpu_ticks(pid) for pid in gateway.all_pids()}
            database_before = processes.database_cpu_ticks()
            result = load.run_wrk(gateway.url, keys_file=keys_file, connections=args.connections, duration_s=args.rps_s)
            used = sum(processes.cpu_ticks(pid) - before for pid, before in ticks.items())
            database_s[gateway.name] += (processes.database_cpu_ticks() - database_before) / processes.CLOCK_TICKS_PER_S
            requests[gateway.name] += result.requests
            failed[gateway.name] += result.errors + result.non2xx
            cpu_s[gateway.name] += used / processes.CLOCK_TICKS_PER_S
            rounds.append(f"{gateway.name} {result.rps:.0f}/s p50 {result.p50_ms:.1f} ms p99 {result.p99_ms:.1f} ms")
    rps = {name: count / (args.rps_s * args.rps_rounds) for name, count in requests.items()}
    ratio = rps["full"] / rps["empty"]
    errors = sum(failed.values())
    # CPU time per request moves less than requests/s when other work shares the cores: a second view of the same.
    cpu_ms = {name: 1000 * cpu_s[name] / max(1, requests[name]) for name in requests}
    report.add(
        f"requests/s at c={args.connections}, full / empty database ({args.load_keys} keys in turn)",
        ">= 0.95, no errors",
        f"{ratio:.3f} ({rps['full']:.0f} / {rps['empty']:.0f} per s; {errors} errors); gateway CPU per request "
        f"{cpu_ms['full']:.2f} / {cpu_ms['empty']:.2f} ms = {cpu_ms['full'] / cpu_ms['empty']:.3f}",
        ratio >= 0.95 and errors == 0,
    )
    database_ms = {name: 1000 * database_s[name] / max(1, requests[name]) for name in requests}
    report.note(
        f"PostgreSQL CPU per request (every server process on the machine, other sessions' too): full "
        f"{database_ms['full']:.2f} ms, empty {database_ms['empty']:.2f} ms"
    )
    report.note("wrk rounds: " + "; ".join(rounds))


def main() -> int:
    args = parse_args()
    args.state_dir = args.state_dir.resolve()  # nginx and the gateways run in other directories
    args.state_dir.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    report = Report(title=f"commit {commit}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores")
    report.note(
        f"shape: {args.keys:,} keys, {args.teams:,} teams, {args.aliases:,} aliases; {args.load_keys:,} distinct "
        f"keys in every load; "
        f"checks: {'none (--build-only)' if args.build_only else ', '.join(args.only)}"
    )
    upstream = processes.Upstream(port=args.port_base + 90, run_dir=args.state_dir)
    upstream.start()
    try:
        keys_file = build(args, report, upstream.url)
        if args.build_only:
            args.only = []
        if {"startup", "rss", "idle", "rps"} & set(args.only):
            check_scale(args, report, keys_file)
        if {"keys", "flood"} & set(args.only):
            gateways = [start_gateway(args, f"process-{n}", FULL_DB, args.port_base + 10 + n, 1) for n in (1, 2)]
            try:
                # The flood first: the keys check's own keys would otherwise count as warm cache entries.
                if "flood" in args.only:
                    flood.check(args, report, gateways, keys_file, database=FULL_DB)
                if "keys" in args.only:
                    key_changes.check(args, report, gateways)
            finally:
                for gateway in gateways:
                    gateway.stop()
    finally:
        upstream.stop()
    markdown = report.to_markdown()
    print(markdown)
    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    out = results / f"scale-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.md"
    out.write_text(markdown)
    log(f"saved {out}")
    return 0 if all(row.is_pass is not False for row in report.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
