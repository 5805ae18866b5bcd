"""What the routing engine costs per call: the decision (constraints + strategy) and the attempt loop around one
answering attempt, for aliases of 2 and 20 deployments, beside the priority walk the gateway did before the
engine (a for loop over the alias's deployments, reproduced below as it was).

    .venv/bin/python bench/routing_decision.py            # about 20 s; prints a Markdown table
    .venv/bin/python bench/routing_decision.py --calls 5000

No Django, no network: the upstream call is a coroutine that answers at once, so the figures are the engine's
own time. Times are per call in microseconds, p50 and p99 over `--calls` calls, after a warm-up; the ratio is
p50 against the old walk's p50 for the same number of deployments, measured in the same run (this machine is
shared and noisy: compare ratios, not absolute times).
"""

import argparse
import asyncio
import random
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.errors import UpstreamError  # noqa: E402
from core.values import ModelPrice, RetryPolicy, RoutingPolicy, Target  # noqa: E402
from routing.engine.constraints import needs_for  # noqa: E402
from routing.engine.router import Engine  # noqa: E402

STRATEGIES = ("priority", "cheapest", "lowest-latency", "weighted", "round-robin", "least-busy")
BODY = {"model": "bench", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 64}


def deployments(count: int) -> tuple[Target, ...]:
    rng = random.Random(count)
    return tuple(
        Target(
            deployment=f"d{index}",
            provider="p",
            kind="openai",
            base_url="http://127.0.0.1:9",
            model=f"m{index}",
            price=ModelPrice(Decimal(rng.randint(1, 300)) / 10, Decimal(rng.randint(1, 900)) / 10),
            context_window=128_000,
            capabilities=frozenset({"chat", "tools", "json"}),
            quality=rng.randint(50, 99) / 100,
            region="eu",
        )
        for index in range(count)
    )


async def answer(target: Target) -> str:
    return "ok"


async def old_priority_walk(targets: tuple[Target, ...], call) -> str:
    """The gateway's routing before the engine (routing/engine/router.py at 2891591): try in order."""
    for index, target in enumerate(targets):
        try:
            return await call(target)
        except UpstreamError as error:
            if not error.is_retryable or index == len(targets) - 1:
                raise
    raise AssertionError


async def time_calls(calls: int, one_call) -> list[float]:
    for _ in range(min(500, calls)):
        await one_call()
    times = []
    for _ in range(calls):
        started = time.perf_counter_ns()
        await one_call()
        times.append((time.perf_counter_ns() - started) / 1000)
    return times


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def main(calls: int) -> None:
    rows = []
    for count in (2, 20):
        targets = deployments(count)
        baseline = await time_calls(calls, lambda targets=targets: old_priority_walk(targets, answer))
        base_p50 = statistics.median(baseline)
        rows.append((count, "old priority walk", base_p50, percentile(baseline, 0.99), 1.0))
        for strategy in STRATEGIES:
            weights = (
                tuple((t.deployment, float(i + 1)) for i, t in enumerate(targets)) if strategy == "weighted" else ()
            )
            policy = RoutingPolicy(
                strategy=strategy, min_quality=0.6, weights=weights, retry=RetryPolicy(max_attempts=3)
            )
            engine = Engine(rng=random.Random(1))
            for target in targets:  # lowest-latency has samples to rank by
                engine.latency.observe(target.deployment, latency_ms=random.Random(target.deployment).uniform(50, 500))
            aliases, policies = {"bench": targets}, {"bench": policy}

            async def one_call(engine=engine, aliases=aliases, policies=policies):
                needs = needs_for(
                    BODY,
                    endpoint="chat.completions",
                    prompt_tokens=12,
                    principal_regions=frozenset({"eu"}),
                    principal_tags=frozenset(),
                    min_quality=None,
                )
                plan = engine.decide("bench", aliases=aliases, policies=policies, needs=needs)
                await engine.run(plan, answer)

            times = await time_calls(calls, one_call)
            p50 = statistics.median(times)
            rows.append((count, f"engine: {strategy}", p50, percentile(times, 0.99), p50 / base_p50))
    print(f"Routing cost per call, {calls:,} calls each (µs; ratio = p50 / old walk's p50, same deployments)\n")
    print("| deployments | routing | p50 µs | p99 µs | p50 ratio |")
    print("|---:|---|---:|---:|---:|")
    for count, name, p50, p99, ratio in rows:
        print(f"| {count} | {name} | {p50:.1f} | {p99:.1f} | {ratio:.1f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    asyncio.run(main(parser.parse_args().calls))
