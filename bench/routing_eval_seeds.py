"""The learned router's fixed rule on fresh train/test splits. Run by hand, not in the suite:

    .venv/bin/python bench/routing_eval_seeds.py                  # seeds 101-110, under a minute a seed
    .venv/bin/python bench/routing_eval_seeds.py --seeds 101-103
    .venv/bin/python bench/routing_eval_seeds.py --summarise      # the table again from the seeds' results

Each seed is one `bench/routing_eval.py --seed N --only learned-recommended` in its own process (its own scratch
SQLite, a fresh gateway): train_router trains and cross-validates on that seed's train split only, and its test
split is replayed for always-premium and for the point the cross-validation recommended. Writes
bench/results/routing_eval_seeds.json and prints the per-seed table, the mean, the minimum and how many seeds
meet issue 12's bar (>= 50% of always-premium's cost saved at >= 95% of its accuracy).
"""

import argparse
import json
import math
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SAVED_BAR, ACCURACY_BAR = Decimal("0.5"), 0.95


def parse_seeds(text: str) -> list[int]:
    """ "101-110" or "101,105,107"."""
    seeds: list[int] = []
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        seeds += range(int(first), int(last or first) + 1)
    return seeds


def run_seed(seed: int, *, port_base: int | None) -> None:
    command = [sys.executable, str(ROOT / "bench" / "routing_eval.py"), "--seed", str(seed)]
    command += ["--only", "learned-recommended"]
    if port_base:
        command += ["--port-base", str(port_base)]
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def seed_row(seed: int) -> dict:
    """One seed's figures, from what its routing_eval run wrote."""
    points = {p["strategy"]: p for p in json.loads((RESULTS / f"routing_eval-seed{seed}.json").read_text())}
    premium, learned = points["always-premium"], points["learned-recommended"]
    said = (RESULTS / f"routing_eval-seed{seed}.md").read_text(encoding="utf-8")
    margin = re.search(r"margin: (-?[\d.]+%)", said)
    # What train_router printed, not the first call's route: a floor point's route adds " unmet" on a call
    # no deployment is predicted to reach the floor.
    chosen = re.search(r"^\s*recommended: (.+?) \(", said, re.MULTILINE)
    premium_cost, learned_cost = Decimal(premium["cost"]), Decimal(learned["cost"])
    premium_accuracy = premium["correct"] / premium["calls"]
    learned_accuracy = learned["correct"] / learned["calls"]
    saved = 1 - learned_cost / premium_cost
    share = learned_accuracy / premium_accuracy
    return {
        "seed": seed,
        "test_prompts": premium["calls"],
        "premium_accuracy": round(premium_accuracy, 4),
        "premium_correct": premium["correct"],
        "premium_cost_usd": str(premium_cost),
        "learned_accuracy": round(learned_accuracy, 4),
        "learned_correct": learned["correct"],
        "learned_cost_usd": str(learned_cost),
        "saved": round(float(saved), 4),
        "accuracy_share": round(share, 4),
        # correct answers above (or, negative, below) the fewest that keep 95% of premium's
        "answers_to_spare": learned["correct"] - math.ceil(ACCURACY_BAR * premium["correct"] - 1e-9),
        "chosen_point": chosen.group(1) if chosen else "?",
        "margin": margin.group(1) if margin else "?",
        "answered_by": learned["by_deployment"],
        "bar_met": saved >= SAVED_BAR and share >= ACCURACY_BAR,
    }


def summary(rows: list[dict]) -> dict:
    met = sum(row["bar_met"] for row in rows)
    return {
        "seeds": len(rows),
        "bar_met": met,
        "saved_mean": round(sum(r["saved"] for r in rows) / len(rows), 4),
        "saved_min": min(r["saved"] for r in rows),
        "accuracy_share_mean": round(sum(r["accuracy_share"] for r in rows) / len(rows), 4),
        "accuracy_share_min": min(r["accuracy_share"] for r in rows),
    }


def table(rows: list[dict], total: dict) -> str:
    lines = [
        "| seed | premium accuracy | premium cost (USD) | learned accuracy | learned cost (USD) | saved "
        "| % of premium accuracy | answers to spare | chosen point (margin) | bar |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['seed']} | {r['premium_accuracy']:.3f} | {Decimal(r['premium_cost_usd']):.4f} "
            f"| {r['learned_accuracy']:.3f} | {Decimal(r['learned_cost_usd']):.4f} | {r['saved']:.1%} "
            f"| {r['accuracy_share']:.1%} | {r['answers_to_spare']} | {r['chosen_point']} ({r['margin']}) "
            f"| {'met' if r['bar_met'] else 'not met'} |"
        )
    lines.append(
        f"| mean | | | | | {total['saved_mean']:.1%} | {total['accuracy_share_mean']:.1%} | | | "
        f"{total['bar_met']} of {total['seeds']} |"
    )
    lines.append(f"| min | | | | | {total['saved_min']:.1%} | {total['accuracy_share_min']:.1%} | | | |")
    lines += [
        "",
        f"The bar (>= 50% saved at >= 95% of premium accuracy) is met on {total['bar_met']} of {total['seeds']} "
        f"seeds; mean {total['saved_mean']:.1%} saved at {total['accuracy_share_mean']:.1%} of premium accuracy, "
        f"minimum {total['saved_min']:.1%} saved and {total['accuracy_share_min']:.1%} of premium accuracy.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="101-110", help='"101-110" or "101,105" (default 101-110)')
    parser.add_argument("--summarise", action="store_true", help="rebuild the table from the seeds' results only")
    parser.add_argument("--port-base", type=int, help="each seed's three ports from here (default: free ports)")
    args = parser.parse_args()
    seeds = parse_seeds(args.seeds)
    if not args.summarise:
        for seed in seeds:
            print(f"seed {seed} ...", flush=True)
            run_seed(seed, port_base=args.port_base)
            row = seed_row(seed)
            print(
                f"seed {seed}: {row['saved']:.1%} saved at {row['accuracy_share']:.1%} ({row['chosen_point']})",
                flush=True,
            )
    rows = [seed_row(seed) for seed in seeds]
    total = summary(rows)
    out = {"seeds": rows, "summary": total}
    (RESULTS / "routing_eval_seeds.json").write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(table(rows, total))
    print("written: bench/results/routing_eval_seeds.json")


if __name__ == "__main__":
    main()
