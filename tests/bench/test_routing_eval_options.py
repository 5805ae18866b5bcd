"""bench/routing_eval.py's --seed and --only pick the split and the strategies, and routing_eval_seeds reads its
--seeds range; checked with --list, which runs no strategy (the eval itself is run by hand)."""

import subprocess
import sys
from pathlib import Path

from bench.routing_eval_seeds import parse_seeds

REPO = Path(__file__).resolve().parents[2]


def list_run(*options: str) -> list[str]:
    command = [sys.executable, str(REPO / "bench" / "routing_eval.py"), "--list", *options]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.strip().splitlines()


def test_seed_and_only_select_the_split_and_the_strategies():
    split, strategies = list_run("--seed", "101", "--only", "learned-recommended")
    assert split.startswith("seed 101: train 661, test 284, ")
    # always-premium is always run; learned-recommended does not drag in learned or learned-trade-off
    assert strategies == "strategies: always-premium, learned-recommended"


def test_the_default_run_keeps_seed_12_and_every_strategy():
    split, strategies = list_run()
    fresh_split, _ = list_run("--seed", "101")
    assert split.startswith("seed 12: train 661, test 284, ")
    assert split.split(", first test ")[1] != fresh_split.split(", first test ")[1]
    assert strategies.split(": ")[1].split(", ") == [
        "always-premium",
        "always-cheapest",
        "random",
        "cheapest-above-quality",
        "cascade-check",
        "cascade-verifier",
        "semantic",
        "learned-recommended",
        "learned",
        "learned-trade-off",
        "bandit",
    ]


def test_seeds_take_a_range_or_a_list():
    assert parse_seeds("101-110") == list(range(101, 111))
    assert parse_seeds("101,105-106") == [101, 105, 106]
