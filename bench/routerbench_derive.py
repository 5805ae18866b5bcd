"""Derive bench/data/routerbench/rows.jsonl.gz, the routing evaluation's data, from RouterBench's rows as the
RouterDC repository ships them (datasets/routerbench_zs/*_test.csv). Run by hand, once; its output is committed:

    .venv/bin/python bench/routerbench_derive.py /path/to/RouterDC      # a checkout (or a bare git directory)

One line per prompt: {"id", "eval", "prompt", "models": {deployment: {"correct": 0 or 1, "answer": "...",
"recorded_cost_usd": "..."}}} for the five models in MODELS, renamed to the eval catalogue's deployment names.
Rows where any of the five has no recorded correctness are dropped (ARC-Challenge has a handful). The prompt
column is a Python list literal of the turns; it is read with ast.literal_eval (never eval) and joined.
"""

import argparse
import ast
import csv
import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "data" / "routerbench" / "rows.jsonl.gz"
# The three RouterBench tasks whose test split the RouterDC snapshot holds in full (gsm8k, mmlu and hellaswag
# are stored there as large files the snapshot does not carry).
TASKS = ("arc_challenge", "mbpp", "winograde")
# RouterBench model -> the eval catalogue's deployment name.
MODELS = {
    "gpt-4-1106-preview": "gpt-4-turbo",
    "gpt-3.5-turbo-1106": "gpt-35-turbo",
    "zero-one-ai/Yi-34B-Chat": "yi-34b",
    "mistralai/mixtral-8x7b-chat": "mixtral-8x7b",
    "mistralai/mistral-7b-chat": "mistral-7b",
}
csv.field_size_limit(sys.maxsize)


def read_csv(source: Path, task: str) -> str:
    relative = f"datasets/routerbench_zs/{task}_test.csv"
    if (source / relative).exists():
        return (source / relative).read_text(encoding="utf-8")
    # A bare git directory (the search tool's fetch): read the file from HEAD.
    return subprocess.run(
        ["git", f"--git-dir={source}", "show", f"HEAD:{relative}"], check=True, capture_output=True, text=True
    ).stdout


def joined(literal: str) -> str:
    turns = ast.literal_eval(literal)
    return "\n".join(turns) if isinstance(turns, list) else str(turns)


def derive(source: Path) -> list[dict]:
    rows = []
    for task in TASKS:
        for row in csv.DictReader(io.StringIO(read_csv(source, task))):
            if any(row[model] == "" for model in MODELS):
                continue
            rows.append(
                {
                    "id": row["sample_id"],
                    "eval": task,
                    "prompt": joined(row["prompt"]),
                    "models": {
                        name: {
                            "correct": int(float(row[model]) >= 0.5),
                            "answer": joined(row[f"{model}|model_response"]),
                            "recorded_cost_usd": row[f"{model}|total_cost"],
                        }
                        for model, name in MODELS.items()
                    },
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the RouterDC checkout or bare git directory")
    rows = derive(parser.parse_args().source)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0: the same input gives the same bytes.
    with gzip.GzipFile(OUT, "wb", mtime=0) as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False, sort_keys=True).encode() + b"\n")
    print(f"{len(rows)} rows -> {OUT.relative_to(Path.cwd()) if OUT.is_relative_to(Path.cwd()) else OUT}")


if __name__ == "__main__":
    main()
