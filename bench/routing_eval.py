"""Routing strategies on held-out public data, replayed through the real gateway. Run by hand, not in the suite:

    .venv/bin/python bench/routing_eval.py                 # a few minutes; writes bench/results/routing_eval.md
    .venv/bin/python bench/routing_eval.py --only always-premium,cheapest-above-quality
    .venv/bin/python bench/routing_eval.py --seed 101 --only learned-recommended   # writes routing_eval-seed101.*

The data: 945 RouterBench prompts (ARC-Challenge, MBPP, Winogrande) with five models' recorded answers and
recorded correctness, bench/data/routerbench/ (README there: source, commit, licence, derivation). They are split
train/test by a seeded shuffle (TEST_SHARE of them held out, SEED below). Training (per-deployment quality, the
learned router's labels, the semantic routes' examples) sees only the train split; only test prompts are replayed.

The upstream is a loopback server in OpenAI's wire format: one deployment per RouterBench model, each answering a
test prompt with that model's recorded answer and reporting o200k token counts of the prompt and the answer, so
the gateway bills each call at the model's public list price (PRICES). A call is correct when the deployment that
answered (x-tollway-deployment) was recorded correct on that prompt; cost is the gateway's own usage records.

Each strategy is one STRATEGIES entry: an alias's catalogue YAML, an optional setup step and, for a sweep, the
floors to send as x-tollway-min-quality. An entry the gateway refuses (a strategy another branch has not landed)
is skipped with the catalogue's message. The webhook verifier is a loopback judge that looks up the recorded
correctness of the answer it is shown and flips it for a share of the answers (VERIFIER_NOISES, swept): at 0% it is
an oracle, not a real verifier (a real one would run the code or compare with a reference answer, and be wrong
more often), so the cascade-verifier rows are read by how fast they degrade as the verdicts get noisier.

The learned router's operating point is chosen on the train split only: `train_router` cross-validates on the
train file and stores a recommended point with the model (routing/engine/learned_cv.py), and the
learned-recommended alias sets no floor and no trade-off, so the gateway routes with that point (its target raised
by the nested cross-validation's margin, which was added after the first held-out run missed the bar). The floor and
trade-off sweeps beside it are replayed on the test split for the curve; a point picked from them is picked on
test, and the table says so.
"""

import argparse
import gzip
import hashlib
import io
import json
import logging
import os
import random
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SCRATCH = Path(tempfile.mkdtemp(prefix="tollway-routing-eval-"))
os.environ.setdefault("DATABASE_URL", f"sqlite:///{SCRATCH / 'eval.sqlite3'}")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["TOLLWAY_ALLOW_LOOPBACK_UPSTREAMS"] = "1"  # the upstream and the verifier are on 127.0.0.1
os.environ.setdefault("TOLLWAY_USAGE_FLUSH_INTERVAL_S", "0.2")
os.environ.setdefault("TOLLWAY_ACCESS_LOG", "0")  # one line per call would drown the table

import django  # noqa: E402

django.setup()

import openai  # noqa: E402
import orjson  # noqa: E402
from django.core.management import call_command, get_commands  # noqa: E402

from billing.models import UsageRecord  # noqa: E402
from billing.token_estimate import count_text  # noqa: E402
from config.asgi import application  # noqa: E402  (it runs django.setup() again: import it before logging is set)
from routing.catalogue.importer import CatalogueError, import_catalogue  # noqa: E402
from tests.upstreams.server import LoopbackServer, read_body, send_json  # noqa: E402

DATA = ROOT / "bench" / "data" / "routerbench" / "rows.jsonl.gz"
RESULTS = ROOT / "bench" / "results"
DEFAULT_SEED, TEST_SHARE = 12, 0.3
SEED = DEFAULT_SEED  # --seed sets it
VERIFIER_NOISES = (0.0, 0.05, 0.1, 0.2)  # the share of verdicts flipped
PREMIUM, CHEAPEST = "gpt-4-turbo", "mistral-7b"
# USD per million input and output tokens, the public list prices of the RouterBench era (late 2023):
# OpenAI's pricing page after DevDay (6 Nov 2023): gpt-4-1106-preview $10/$30, gpt-3.5-turbo-1106 $1/$2;
# Together AI's serverless inference prices (Dec 2023), per model size: Yi-34B-Chat $0.80, Mixtral-8x7B-Instruct
# $0.60, Mistral-7B-Instruct $0.20, input and output alike.
PRICES = {
    "gpt-4-turbo": ("10", "30"),
    "gpt-35-turbo": ("1", "2"),
    "yi-34b": ("0.80", "0.80"),
    "mixtral-8x7b": ("0.60", "0.60"),
    "mistral-7b": ("0.20", "0.20"),
}
DEPLOYMENTS = tuple(PRICES)
FLOORS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
TRADE_OFFS = (0.02, 0.05, 0.1, 0.15, 0.2)


def load_rows() -> tuple[list[dict], list[dict]]:
    with gzip.open(DATA, "rt", encoding="utf-8") as lines:
        rows = sorted((json.loads(line) for line in lines), key=lambda row: row["id"])
    random.Random(SEED).shuffle(rows)
    cut = round(len(rows) * TEST_SHARE)
    return rows[cut:], rows[:cut]  # train, test


def key_of(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()


class RecordedUpstream:
    """OpenAI's chat completions answered from the recorded answers: the model name is the deployment's."""

    def __init__(self, rows: list[dict]) -> None:
        self.by_prompt = {key_of(row["prompt"]): row for row in rows}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        payload = orjson.loads(await read_body(receive) or b"{}")
        row = self.by_prompt.get(key_of(str(payload.get("messages", [{}])[-1].get("content", ""))))
        model = str(payload.get("model", ""))
        if row is None or model not in row["models"]:
            error = {"message": "no recorded answer", "type": "invalid_request_error", "param": None, "code": None}
            return await send_json(send, 404, {"error": error})
        answer = row["models"][model]["answer"]
        prompt_tokens, completion_tokens = count_text(row["prompt"]), count_text(answer)
        body = {
            "id": f"chatcmpl-{key_of(model + row['id'])[:24]}",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        await send_json(send, 200, body)


class RecordedVerifier:
    """The cascade's webhook: {"request", "answer"} -> {"pass": bool}, from the recorded correctness of that
    answer to that prompt, flipped for a `noise` share of (prompt, answer) pairs. Which pairs is a seeded hash,
    not a draw in arrival order, so the calls' concurrency cannot change it, and the pairs flipped at 5% are
    among those flipped at 10%. Oracle-like: it knows the labels."""

    def __init__(self, rows: list[dict], *, noise: float = 0.0) -> None:
        self.by_prompt = {key_of(row["prompt"]): row for row in rows}
        self.noise = noise
        self.calls = 0

    def is_flipped(self, prompt: str, answer: str) -> bool:
        draw = hashlib.sha256(f"{SEED}\n{key_of(prompt)}\n{answer}".encode()).digest()
        return int.from_bytes(draw[:8], "big") / 2**64 < self.noise

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        self.calls += 1
        try:
            payload = orjson.loads(await read_body(receive))
            messages = payload["request"]["messages"]
            answer = payload["answer"]
            answer = answer if isinstance(answer, str) else answer["choices"][0]["message"]["content"]
            row = self.by_prompt[key_of(messages[-1]["content"])]
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            return await send_json(send, 400, {"error": "unrecognised verification request"})
        is_correct = any(m["answer"] == answer and m["correct"] for m in row["models"].values())
        if self.is_flipped(row["prompt"], answer):
            is_correct = not is_correct
        await send_json(send, 200, {"pass": is_correct})


@dataclass
class Strategy:
    """One row (or, with floors, one curve) of the table: an alias of the eval's deployments routed by `routing`."""

    name: str
    routing: Callable[["Context"], dict]
    setup: Callable[["Context", str], str | None] | None = None  # returns a reason to skip, or None
    floors: tuple[float | None, ...] = (None,)
    # learned: each a point of its own, the alias's `learned: {trade_off: x}` set before its replay
    trade_offs: tuple[float, ...] = ()
    verifier_noises: tuple[float, ...] = ()  # a point per share of flipped verdicts (the webhook verifier)
    feedback: bool = False  # send each call's recorded correctness to POST /v1/feedback
    sequential: bool = False

    @property
    def alias(self) -> str:
        return f"eval-{self.name}"


@dataclass
class Context:
    train: list[dict]
    test: list[dict]
    verifier_url: str = ""
    quality: dict[str, float] = field(default_factory=dict)  # train-split accuracy per deployment
    training: dict[str, str] = field(default_factory=dict)  # alias -> what train_router printed

    def __post_init__(self) -> None:
        self.quality = {d: round(accuracy(self.train, d), 3) for d in DEPLOYMENTS}


def accuracy(rows: list[dict], deployment: str) -> float:
    return sum(row["models"][deployment]["correct"] for row in rows) / len(rows)


def train_learned(context: Context, alias: str) -> str | None:
    if "train_router" not in get_commands():
        return "python manage.py train_router does not exist yet"
    labels = SCRATCH / "train.jsonl"
    with labels.open("w", encoding="utf-8") as out:
        for row in context.train:
            scores = {d: float(row["models"][d]["correct"]) for d in DEPLOYMENTS}
            out.write(json.dumps({"prompt": row["prompt"], "scores": scores}) + "\n")
    out = io.StringIO()
    call_command("train_router", alias, str(labels), stdout=out)
    context.training[alias] = out.getvalue()
    return None


def learned_by_value(trade_off: float) -> dict:
    return {"strategy": "learned", "learned": {"trade_off": trade_off}}


def semantic_routes(context: Context) -> dict:
    """One route per task, from train prompts only: the cheapest deployment within 3 points of the best train
    accuracy on that task. Examples are each prompt's last 400 characters (the question, not the few shots)."""
    routes = []
    for task in sorted({row["eval"] for row in context.train}):
        rows = [row for row in context.train if row["eval"] == task]
        scores = {d: accuracy(rows, d) for d in DEPLOYMENTS}
        good = [d for d in DEPLOYMENTS if scores[d] >= max(scores.values()) - 0.03]
        target = min(good, key=lambda d: Decimal(PRICES[d][0]))
        examples = [row["prompt"][-400:] for row in rows[:20]]
        routes.append({"name": task.replace("_", "-"), "target": target, "examples": examples})
    return {"strategy": "semantic", "routes": routes, "threshold": 0.6, "default": PREMIUM}


def cascade(checks: Callable[[Context], list[dict]]) -> Callable[[Context], dict]:
    steps = ["mixtral-8x7b", "gpt-35-turbo", PREMIUM]
    return lambda context: {"strategy": "cascade", "cascade": {"steps": steps, "checks": checks(context)}}


STRATEGIES = [
    Strategy("always-premium", lambda c: {"strategy": "priority"}),
    Strategy("always-cheapest", lambda c: {"strategy": "cheapest"}),
    # Equal weights: each call goes to a deployment drawn uniformly by the engine's own random source.
    Strategy("random", lambda c: {"strategy": "weighted", "weights": dict.fromkeys(DEPLOYMENTS, 1)}),
    # Part 1's cheapest under a floor; the floor is swept through x-tollway-min-quality.
    Strategy("cheapest-above-quality", lambda c: {"strategy": "cheapest", "min_quality": 0.5}, floors=FLOORS),
    Strategy("cascade-check", cascade(lambda c: [{"type": "regex", "pattern": r"^\s*[A-E]\s*$"}])),
    Strategy(
        "cascade-verifier",
        cascade(lambda c: [{"type": "webhook", "url": c.verifier_url, "pass_score": 0.5}]),
        verifier_noises=VERIFIER_NOISES,
    ),
    Strategy("semantic", semantic_routes),
    # No floor and no trade-off: the gateway routes with the point train_router's cross-validation recommended
    # (on the train split alone). This is the learned router's row; the sweeps below are for the curve.
    Strategy("learned-recommended", lambda c: {"strategy": "learned"}, setup=train_learned),
    Strategy("learned", lambda c: {"strategy": "learned", "min_quality": 0.5}, setup=train_learned, floors=FLOORS),
    # The learned router by value (predicted quality - trade_off x cost relative to the dearest), no floor.
    Strategy("learned-trade-off", lambda c: learned_by_value(0.05), setup=train_learned, trade_offs=TRADE_OFFS),
    Strategy(
        "bandit",
        lambda c: {"strategy": "bandit", "bandit": {"weights": {"quality": 1.0, "cost": 0.3, "latency": 0.0}}},
        feedback=True,
        sequential=True,
    ),
]


def catalogue(upstream_url: str) -> dict:
    return {
        "providers": [
            {"name": "recorded", "kind": "openai-compatible", "base_url": f"{upstream_url}/v1", "api_key": "x"}
        ],
        "deployments": [
            {
                "name": name,
                "provider": "recorded",
                "model": name,
                "input_per_1m": prices[0],
                "output_per_1m": prices[1],
                "context_window": 32_000,
            }
            for name, prices in PRICES.items()
        ],
    }


def install(strategy: Strategy, context: Context) -> str | None:
    """Import the strategy's alias; the catalogue's refusal (or the setup's) is the reason to skip it."""
    # Priority order premium-first: always-premium is the priority walk, and a cascade's steps are its own.
    alias = {"name": strategy.alias, "deployments": [PREMIUM, *[d for d in DEPLOYMENTS if d != PREMIUM]]}
    alias["routing"] = strategy.routing(context)
    try:
        import_catalogue(data={"aliases": [alias]}, source=strategy.alias)
    except CatalogueError as error:
        return "the catalogue refuses its YAML: " + "; ".join(error.errors)[:300]
    return strategy.setup(context, strategy.alias) if strategy.setup else None


@dataclass
class Point:
    strategy: str
    floor: float | None
    trade_off: float | None
    calls: int
    correct: int
    cost: Decimal
    by_deployment: dict[str, int]
    routes: list[str] = field(default_factory=list)  # each call's x-tollway-route
    noise: float | None = None  # the verifier's share of flipped verdicts

    @property
    def accuracy(self) -> float:
        return self.correct / self.calls

    @property
    def label(self) -> str:
        if self.noise is not None:
            return f"{self.strategy} (verifier noise {self.noise:.0%})"
        if self.trade_off is not None:
            return f"{self.strategy} ({self.trade_off:g}, test sweep)"
        if self.strategy == "learned-recommended":
            chosen = next((r for r in self.routes if "recommended " in r), "")
            point = chosen.split("recommended ", 1)[1].split(":", 1)[0] if chosen else "?"
            return f"{self.strategy} ({point}, chosen on train)"
        return self.strategy if self.floor is None else f"{self.strategy} (floor {self.floor:g}, test sweep)"


def probe(client: openai.OpenAI, strategy: Strategy, row: dict) -> str | None:
    """Why the gateway cannot run this strategy yet, or None. Part 1's engine accepts the part-2 strategy names
    and routes them in priority order (x-tollway-route says so): that would be always-premium under another name."""
    raw = client.chat.completions.with_raw_response.create(
        model=strategy.alias, messages=[{"role": "user", "content": row["prompt"]}]
    )
    if "part 2: priority order" in raw.headers.get("x-tollway-route", ""):
        return f"the engine routes {strategy.name!r} in priority order (not implemented on this branch)"
    if strategy.feedback:
        try:
            client.post("/feedback", body={"request_id": raw.headers["x-request-id"], "score": 1.0}, cast_to=object)
        except openai.NotFoundError as error:
            return f"POST /v1/feedback answers 404 ({error.message[:80]})"
    return None


def replay(
    client: openai.OpenAI, strategy: Strategy, floor: float | None, test: list[dict], trade_off: float | None = None
) -> Point:
    headers = {} if floor is None else {"x-tollway-min-quality": str(floor)}

    def one(row: dict) -> tuple[str, str, str]:
        raw = client.chat.completions.with_raw_response.create(
            model=strategy.alias, messages=[{"role": "user", "content": row["prompt"]}], extra_headers=headers
        )
        deployment, request_id = raw.headers["x-tollway-deployment"], raw.headers["x-request-id"]
        route = raw.headers.get("x-tollway-route", "")
        if strategy.feedback:
            client.post(
                "/feedback",
                body={"request_id": request_id, "score": float(row["models"][deployment]["correct"])},
                cast_to=object,
            )
        return deployment, request_id, route

    if strategy.sequential:
        answered = [one(row) for row in test]
    else:
        with ThreadPoolExecutor(max_workers=4) as pool:
            answered = list(pool.map(one, test))
    request_ids = [request_id for _, request_id, _ in answered]
    wait_for_records(request_ids)
    cost = sum(
        (r.cost_usd for r in UsageRecord.objects.filter(request_id__in=request_ids).only("cost_usd")), Decimal(0)
    )
    by_deployment: dict[str, int] = {}
    for deployment, _, _ in answered:
        by_deployment[deployment] = by_deployment.get(deployment, 0) + 1
    correct = sum(row["models"][d]["correct"] for row, (d, _, _) in zip(test, answered, strict=True))
    routes = [route for _, _, route in answered]
    return Point(strategy.name, floor, trade_off, len(test), correct, cost, by_deployment, routes)


def set_trade_off(
    client: openai.OpenAI, strategy: Strategy, trade_off: float, row: dict, timeout_s: float = 30
) -> None:
    """Set the alias's trade-off and wait until the gateway routes with it (x-tollway-route names it)."""
    import time

    alias = {"name": strategy.alias, "deployments": [PREMIUM, *[d for d in DEPLOYMENTS if d != PREMIUM]]}
    import_catalogue(data={"aliases": [{**alias, "routing": learned_by_value(trade_off)}]}, source=strategy.alias)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        raw = client.chat.completions.with_raw_response.create(
            model=strategy.alias, messages=[{"role": "user", "content": row["prompt"]}]
        )
        if f"trade-off {trade_off:g}:" in raw.headers.get("x-tollway-route", ""):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the gateway did not apply trade-off {trade_off:g} within {timeout_s} s")


def wait_for_records(request_ids: list[str], timeout_s: float = 60) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while UsageRecord.objects.filter(request_id__in=request_ids).count() < len(request_ids):
        if time.monotonic() > deadline:
            raise RuntimeError("the gateway's usage records did not all land")
        time.sleep(0.2)


def issue_key() -> str:
    from portal import services
    from portal.models import Team, Tenant

    tenant = Tenant.objects.create(name="Routing eval", slug="routing-eval")
    team = Team.objects.create(tenant=tenant, name="Eval", slug="eval")
    return services.issue_api_key(team=team, name="routing-eval").secret


def report(points: list[Point], skipped: dict[str, str], context: Context) -> str:
    premium = next(p for p in points if p.strategy == "always-premium")
    lines = [
        f"Held-out test prompts: {len(context.test)} of {len(context.train) + len(context.test)} "
        f"(seed {SEED}, {TEST_SHARE:.0%} held out); train-split accuracy per deployment (its `quality`): "
        + ", ".join(f"{d} {q:.3f}" for d, q in context.quality.items()),
        "",
        "| strategy | accuracy | total cost (USD) | cost saved vs always-premium | % of premium accuracy "
        "| answered by |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for p in points:
        saved = 1 - p.cost / premium.cost
        answered = ", ".join(f"{d} {n}" for d, n in sorted(p.by_deployment.items(), key=lambda kv: -kv[1]))
        lines.append(
            f"| {p.label} | {p.accuracy:.3f} | {p.cost:.4f} | {saved:.1%} | {p.accuracy / premium.accuracy:.1%} "
            f"| {answered} |"
        )
    lines += [
        "",
        "The learned router at the point chosen on the train split (issue 12's bar: >= 50% of always-premium's "
        "cost saved at >= 95% of its accuracy, on held-out prompts):",
        "",
    ]
    for p in (p for p in points if p.strategy == "learned-recommended"):
        saved, share = 1 - p.cost / premium.cost, p.accuracy / premium.accuracy
        verdict = "met" if saved >= Decimal("0.5") and share >= 0.95 else "NOT met"
        lines.append(f"- {p.label}: {saved:.1%} saved at {share:.1%} of premium accuracy: the bar is {verdict}")
    for alias, said in context.training.items():
        if alias == "eval-learned-recommended":
            lines += ["", f"What `train_router` printed for {alias} (cross-validation on the train split only):", ""]
            lines += ["    " + line for line in said.rstrip().splitlines()]
    lines += [
        "",
        "Cost saved at ≥ 95% of premium accuracy, the best point of each strategy on the test split (a point picked "
        "from a test sweep is picked on test: a reference, not a result):",
        "",
    ]
    for name in dict.fromkeys(p.strategy for p in points):
        eligible = [p for p in points if p.strategy == name and p.accuracy >= 0.95 * premium.accuracy]
        if eligible:
            best = min(eligible, key=lambda p: p.cost)
            lines.append(f"- {name}: {1 - best.cost / premium.cost:.1%} saved ({best.label}, {best.accuracy:.3f})")
        else:
            lines.append(f"- {name}: no point reaches 95% of premium accuracy")
    for name, reason in skipped.items():
        lines.append(f"- {name}: skipped, {reason}")
    lines += notes(points)
    return "\n".join(lines) + "\n"


def notes(points: list[Point]) -> list[str]:
    out = ["", "Notes:", ""]
    verifier = [p for p in points if p.strategy == "cascade-verifier"]
    if verifier:
        out.append(
            "- cascade-verifier: the verifier is the recorded label, flipped for "
            + ", ".join(f"{p.noise:.0%}" for p in verifier)
            + " of verdicts; at 0% it is an oracle no real verifier matches, so the noisier rows are the honest ones."
        )
    for p in (p for p in points if p.strategy == "semantic"):
        by_route = sum(1 for r in p.routes if "(route " in r)
        out.append(
            '- semantic: threshold 0.6 is the product\'s default (README, "Semantic routing"), written into this '
            "eval before semantic routing existed and never tuned on either split; "
            f"{by_route} of {p.calls} test prompts reached it and took their task's "
            "route, the rest went to the default (always-premium's model)."
        )
    return out if len(out) > 3 else []


def plot(points: list[Point], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display; PNG only
    import matplotlib.pyplot as plt

    premium = next(p for p in points if p.strategy == "always-premium")
    figure, axes = plt.subplots(figsize=(8, 5), dpi=110)
    names = list(dict.fromkeys(p.strategy for p in points))
    colours = plt.get_cmap("tab20").colors
    for n, name in enumerate(names):
        mine = [p for p in points if p.strategy == name]
        # A sweep is drawn along its own parameter, the verifier's noise in its order, the rest by cost.
        mine.sort(key=lambda p: (p.noise, 0) if p.noise is not None else (0, p.cost))
        costs = [float(p.cost / premium.cost) for p in mine]  # plot only: Decimal to float
        is_chosen = name == "learned-recommended"  # the train-chosen point: the one that answers the bar
        label = name
        if is_chosen:
            label = f"{name} (chosen on train)"
        elif mine[0].noise is not None:
            label = f"{name} (verifier noise {mine[0].noise:.0%}-{mine[-1].noise:.0%})"
        axes.plot(
            costs,
            [p.accuracy for p in mine],
            marker="*" if is_chosen else "o",
            markersize=16 if is_chosen else (8 if len(mine) == 1 else 5),
            color=colours[(2 * n) % 20 + (n // 10) % 2],
            label=label,
            linestyle="-" if len(mine) > 1 else "",
            zorder=4 if len(mine) == 1 else 2,
        )
        for p, x in zip(mine, costs, strict=True):
            if p.noise is not None:
                axes.annotate(f"{p.noise:.0%}", (x, p.accuracy), textcoords="offset points", xytext=(5, 2), fontsize=7)
    axes.axhline(0.95 * premium.accuracy, color="grey", linestyle=":", linewidth=1, label="95% of premium accuracy")
    axes.set_xlabel("cost relative to always-premium")
    axes.set_ylabel("accuracy on held-out prompts")
    axes.set_title("RouterBench (ARC-Challenge, MBPP, Winogrande) through the gateway")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(path)


def save_points(points: list[Point], path: Path) -> None:
    # The label keeps the learned router's chosen point, which is read from the routes not saved here.
    rows = [{**p.__dict__, "cost": str(p.cost), "routes": [], "label": p.label} for p in points]
    path.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


def load_points(path: Path) -> list[Point]:
    rows = json.loads(path.read_text(encoding="utf-8"))
    fields = Point.__dataclass_fields__
    return [Point(**{k: v for k, v in row.items() if k in fields} | {"cost": Decimal(row["cost"])}) for row in rows]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated strategy names (always-premium is always run)")
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help=f"the train/test shuffle's seed (default {DEFAULT_SEED}); another seed writes routing_eval-seed<N>.*",
    )
    parser.add_argument(
        "--list", action="store_true", help="print the chosen strategies and the split's sizes, and run nothing"
    )
    parser.add_argument("--limit", type=int, help="replay only the first N test prompts (a quick look)")
    parser.add_argument("--replot", action="store_true", help="redraw the PNG from the last run's points only")
    parser.add_argument(
        "--port-base", type=int, help="the upstream, verifier and gateway on this port and the next two (default: free)"
    )
    return parser.parse_args(argv)


def selected_strategies(only: str | None) -> list[Strategy]:
    wanted = set(only.split(",")) | {"always-premium"} if only else None
    # "learned" names its variants too (learned-trade-off)
    is_wanted = lambda name: wanted is None or any(name == w or name.startswith(f"{w}-") for w in wanted)  # noqa: E731
    return [s for s in STRATEGIES if is_wanted(s.name)]


def main() -> None:
    global SEED
    args = parse_args()
    SEED = args.seed  # the split, the verifier's flips and the report all read it
    stem = "routing_eval" if args.seed == DEFAULT_SEED else f"routing_eval-seed{args.seed}"
    chosen = selected_strategies(args.only)
    if args.list:
        train, test = load_rows()
        print(f"seed {SEED}: train {len(train)}, test {len(test)}, first test {test[0]['id']}")
        print("strategies: " + ", ".join(s.name for s in chosen))
        return
    if args.replot:
        plot(load_points(RESULTS / "routing_eval.json"), RESULTS / "routing_eval.png")
        return
    port = lambda offset: args.port_base + offset if args.port_base else None  # noqa: E731

    # One access-log line per call would drown the table.
    for name in ("tollway.access", "httpx", "httpx2"):
        logging.getLogger(name).setLevel(logging.WARNING)
    call_command("migrate", verbosity=0)
    train, test = load_rows()
    test = test[: args.limit] if args.limit else test
    context = Context(train=train, test=test)
    judge = RecordedVerifier(test)
    with (
        LoopbackServer(RecordedUpstream(train + test), port=port(0)) as upstream,
        LoopbackServer(judge, port=port(1)) as verifier,
    ):
        context.verifier_url = f"{verifier.url}/check"
        data = catalogue(upstream.url)
        for deployment in data["deployments"]:
            deployment["quality"] = context.quality[deployment["name"]]
        import_catalogue(data=data, source="routing-eval")
        skipped = {s.name: reason for s in chosen if (reason := install(s, context))}
        for name, reason in skipped.items():
            print(f"skipping {name}: {reason}", flush=True)

        points = []
        with LoopbackServer(application, lifespan="on", port=port(2)) as gateway:
            client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=issue_key(), max_retries=0)
            for strategy in chosen:
                if strategy.name not in skipped and (reason := probe(client, strategy, test[0])):
                    print(f"skipping {strategy.name}: {reason}", flush=True)
                    skipped[strategy.name] = reason
            for strategy in (s for s in chosen if s.name not in skipped):
                for trade_off in strategy.trade_offs:
                    set_trade_off(client, strategy, trade_off, test[0])
                    point = replay(client, strategy, None, test, trade_off=trade_off)
                    print(f"{point.label}: accuracy {point.accuracy:.3f}, cost {point.cost:.4f}", flush=True)
                    points.append(point)
                for noise in strategy.verifier_noises:
                    judge.noise = noise
                    point = replay(client, strategy, None, test)
                    point.noise = noise
                    print(f"{point.label}: accuracy {point.accuracy:.3f}, cost {point.cost:.4f}", flush=True)
                    points.append(point)
                judge.noise = 0.0
                is_swept = strategy.trade_offs or strategy.verifier_noises
                for floor in strategy.floors if not is_swept else ():
                    try:
                        point = replay(client, strategy, floor, test)
                    except openai.BadRequestError as error:
                        # A floor above every deployment's quality: the gateway refuses, as it should.
                        print(f"{strategy.name} floor {floor}: refused ({error.message[:120]})", flush=True)
                        continue
                    print(f"{point.label}: accuracy {point.accuracy:.3f}, cost {point.cost:.4f}", flush=True)
                    points.append(point)
    RESULTS.mkdir(exist_ok=True)
    save_points(points, RESULTS / f"{stem}.json")
    table = report(points, skipped, context)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"{stem}.md").write_text(table, encoding="utf-8")
    (RESULTS / f"{stem}-{stamp}.md").write_text(table, encoding="utf-8")
    plot(points, RESULTS / f"{stem}.png")
    print(table)
    print(f"written: bench/results/{stem}.md and {stem}.png (scratch: {SCRATCH})")


if __name__ == "__main__":
    main()
