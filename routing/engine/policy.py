"""An alias's `routing:` mapping (catalogue YAML, REST, console) <-> RoutingPolicy, checked with errors that name
their path. Pure: the catalogue importer calls it and resolves the fallback aliases it returns itself.

    routing:
      strategy: cheapest        # core.values.STRATEGIES; priority when absent
      min_quality: 0.7
      weights: {cheap-llama: 3, premium-gpt4: 1}
      fallbacks: [claude-sonnet]
      retry: {max_attempts: 3, base_delay_ms: 100, max_delay_ms: 2000, deadline_ms: 30000}
      breaker: {consecutive_failures: 5, error_rate: 0.5, window_s: 30, cooldown_s: 30, half_open_probes: 1,
                min_calls: 10}
      experiment: {name: llama-vs-mixtral, arms: {cheap-llama: 90, mid-mixtral: 10}}   # part 2
      bandit: {weights: {quality: 1.0, cost: 0.3, latency: 0.0}, exploration: 0.1, frozen: false}
      cascade: {steps: [cheap-llama, premium-gpt4], checks: [{type: json}], max_cost_usd: "0.05"}   # part 2
      learned: {trade_off: 0.2}   # part 2: with strategy learned (its model: manage.py train_router)
      routes: [{name: code, target: code-model, examples: ["Write a Python function that..."]}]  # semantic
      threshold: 0.6
      default: premium-gpt4
"""

from collections.abc import Mapping
from dataclasses import fields
from decimal import Decimal, InvalidOperation

import regex

from core.values import (
    DEFAULT_POLICY,
    STRATEGIES,
    BanditPolicy,
    BreakerPolicy,
    CascadePolicy,
    CheckSpec,
    ExperimentPolicy,
    LearnedPolicy,
    RetryPolicy,
    RoutingPolicy,
    SemanticPolicy,
    SemanticRoute,
)

POLICY_KEYS = (
    "strategy",
    "min_quality",
    "weights",
    "fallbacks",
    "retry",
    "breaker",
    "experiment",
    "bandit",
    "cascade",
    "learned",
    "routes",
    "threshold",
    "default",
)
MAX_ATTEMPTS = 20  # whatever the YAML says: a call never costs more upstream attempts than this
MAX_DEADLINE_MS = 600_000
MAX_FALLBACKS = 10

# key -> (lowest, highest, is an integer)
_RETRY_BOUNDS = {
    "max_attempts": (1, MAX_ATTEMPTS, True),
    "base_delay_ms": (0, 60_000, True),
    "max_delay_ms": (0, 600_000, True),
    "deadline_ms": (1, MAX_DEADLINE_MS, True),
}
_BREAKER_BOUNDS = {
    "consecutive_failures": (1, 10_000, True),
    "error_rate": (0.01, 1.0, False),
    "window_s": (1, 86_400, False),
    "cooldown_s": (0.1, 86_400, False),
    "half_open_probes": (1, 1_000, True),
    "min_calls": (1, 1_000_000, True),
}


class _Checker:
    def __init__(self, path: str) -> None:
        self.path = path
        self.errors: list[str] = []

    def fail(self, where: str, message: str) -> None:
        self.errors.append(f"{self.path}.{where}: {message}")

    def number(self, where: str, value: object, low: float, high: float, *, integer: bool) -> float | int | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
            self.fail(where, f"must be {'a whole number' if integer else 'a number'} from {low} to {high}")
            return None
        if not low <= value <= high:
            self.fail(where, f"must be from {low} to {high}, not {value}")
            return None
        return value

    def mapping(self, where: str, value: object) -> Mapping | None:
        if not isinstance(value, Mapping):
            self.fail(where, "must be a mapping")
            return None
        return value

    def bounded(self, where: str, raw: object, bounds: dict, defaults) -> dict:
        values = {}
        raw = self.mapping(where, raw)
        for key, item in (raw or {}).items():
            if key not in bounds:
                self.fail(f"{where}.{key}", f"unknown key; expected one of {', '.join(bounds)}")
                continue
            low, high, integer = bounds[key]
            number = self.number(f"{where}.{key}", item, low, high, integer=integer)
            if number is not None:
                values[key] = float(number) if not integer else number
        return {f.name: values.get(f.name, getattr(defaults, f.name)) for f in fields(defaults)}


def parse_policy(raw: object, *, path: str, deployments: tuple[str, ...]) -> tuple[RoutingPolicy, list[str]]:
    """The policy, and every problem as "path: message" (the policy is only meaningful when there are none).
    `deployments` are the alias's own: weights and experiment arms must name one of them."""
    if raw is None:
        return DEFAULT_POLICY, []
    check = _Checker(path)
    if not isinstance(raw, Mapping):
        return DEFAULT_POLICY, [f"{path}: must be a mapping with keys among {', '.join(POLICY_KEYS)}"]
    for key in raw:
        if key not in POLICY_KEYS:
            check.fail(str(key), f"unknown key; expected one of {', '.join(POLICY_KEYS)}")

    strategy = raw.get("strategy", "priority")
    if strategy not in STRATEGIES:
        check.fail("strategy", f"must be one of {', '.join(STRATEGIES)}")
        strategy = "priority"

    min_quality = raw.get("min_quality")
    if min_quality is not None:
        min_quality = check.number("min_quality", min_quality, 0, 1, integer=False)

    weights: list[tuple[str, float]] = []
    if "weights" in raw:
        for name, weight in (check.mapping("weights", raw["weights"]) or {}).items():
            if name not in deployments:
                check.fail(f"weights.{name}", "is not one of this alias's deployments")
            value = check.number(f"weights.{name}", weight, 0, 1_000_000, integer=False)
            if value is not None and name in deployments:
                weights.append((str(name), float(value)))
        if not check.errors and weights and not any(w > 0 for _, w in weights):
            check.fail("weights", "at least one weight must be above 0")
    if strategy == "weighted" and "weights" not in raw:
        check.fail("weights", "the weighted strategy needs weights")

    fallbacks: list[str] = []
    if "fallbacks" in raw:
        listed = raw["fallbacks"]
        if not isinstance(listed, list) or not all(isinstance(n, str) and n for n in listed):
            check.fail("fallbacks", "must be a list of alias names")
        elif len(listed) > MAX_FALLBACKS:
            check.fail("fallbacks", f"must name at most {MAX_FALLBACKS} aliases, not {len(listed)}")
        else:
            fallbacks = list(dict.fromkeys(listed))

    retry = (
        RetryPolicy(**check.bounded("retry", raw["retry"], _RETRY_BOUNDS, RetryPolicy()))
        if "retry" in raw
        else RetryPolicy()
    )
    if retry.max_delay_ms < retry.base_delay_ms:
        check.fail("retry.max_delay_ms", "must not be below base_delay_ms")
    breaker = (
        BreakerPolicy(**check.bounded("breaker", raw["breaker"], _BREAKER_BOUNDS, BreakerPolicy()))
        if "breaker" in raw
        else BreakerPolicy()
    )

    experiment = None
    if "experiment" in raw:
        spec = check.mapping("experiment", raw["experiment"]) or {}
        name = spec.get("name")
        if not isinstance(name, str) or not name or len(name) > 100:
            check.fail("experiment.name", "must be a name of 1 to 100 characters")
        arms = []
        for arm, share in (check.mapping("experiment.arms", spec.get("arms")) or {}).items():
            if arm not in deployments:
                check.fail(f"experiment.arms.{arm}", "is not one of this alias's deployments")
            value = check.number(f"experiment.arms.{arm}", share, 0, 100, integer=True)
            if value is not None:
                arms.append((str(arm), int(value)))
        for key in spec:
            if key not in ("name", "arms"):
                check.fail(f"experiment.{key}", "unknown key; expected name or arms")
        experiment = ExperimentPolicy(name=str(name or ""), arms=tuple(arms))

    bandit = None
    if "bandit" in raw:
        spec = check.mapping("bandit", raw["bandit"]) or {}
        values = {}
        for metric, weight in (check.mapping("bandit.weights", spec.get("weights", {})) or {}).items():
            if metric not in ("quality", "cost", "latency"):
                check.fail(f"bandit.weights.{metric}", "must be quality, cost or latency")
                continue
            value = check.number(f"bandit.weights.{metric}", weight, 0, 1000, integer=False)
            if value is not None:
                values[f"{metric}_weight"] = float(value)
        if "exploration" in spec:
            value = check.number("bandit.exploration", spec["exploration"], 0, 1, integer=False)
            if value is not None:
                values["exploration"] = float(value)
        if "frozen" in spec:
            if isinstance(spec["frozen"], bool):
                values["frozen"] = spec["frozen"]
            else:
                check.fail("bandit.frozen", "must be true or false")
        for key in spec:
            if key not in ("weights", "exploration", "frozen"):
                check.fail(f"bandit.{key}", "unknown key; expected weights, exploration or frozen")
        bandit = BanditPolicy(**values)

    cascade = _parse_cascade(check, raw, strategy=strategy, deployments=deployments)
    semantic = _parse_semantic(check, raw, strategy=strategy)

    learned = None
    if "learned" in raw:
        spec = check.mapping("learned", raw["learned"]) or {}
        trade_off = 0.0
        for key, value in spec.items():
            if key != "trade_off":
                check.fail(f"learned.{key}", "unknown key; expected trade_off")
                continue
            # In quality points per "the dearest deployment's cost": 1 gives up 0.1 of quality to pay a tenth.
            number = check.number("learned.trade_off", value, 0, 100, integer=False)
            trade_off = 0.0 if number is None else float(number)
        learned = LearnedPolicy(trade_off=trade_off)

    policy = RoutingPolicy(
        strategy=strategy,
        min_quality=None if min_quality is None else float(min_quality),
        weights=tuple(weights),
        fallbacks=tuple(fallbacks),
        retry=retry,
        breaker=breaker,
        experiment=experiment,
        bandit=bandit,
        cascade=cascade,
        learned=learned,
        semantic=semantic,
    )
    return policy, check.errors


def policy_to_dict(policy: RoutingPolicy) -> dict | None:
    """The `routing:` mapping that parses back to this policy; only what differs from the defaults. None when
    the alias routes by default (the exporter then writes no `routing:` key)."""
    if policy == DEFAULT_POLICY:
        return None
    out: dict = {"strategy": policy.strategy}
    if policy.min_quality is not None:
        out["min_quality"] = policy.min_quality
    if policy.weights:
        out["weights"] = {name: _plain(weight) for name, weight in policy.weights}
    if policy.fallbacks:
        out["fallbacks"] = list(policy.fallbacks)
    for key, value, default in (("retry", policy.retry, RetryPolicy()), ("breaker", policy.breaker, BreakerPolicy())):
        changed = {
            f.name: getattr(value, f.name) for f in fields(value) if getattr(value, f.name) != getattr(default, f.name)
        }
        if changed:
            out[key] = {k: _plain(v) for k, v in changed.items()}
    if policy.experiment is not None:
        out["experiment"] = {"name": policy.experiment.name, "arms": dict(policy.experiment.arms)}
    if policy.bandit is not None:
        b = policy.bandit
        out["bandit"] = {
            "weights": {"quality": b.quality_weight, "cost": b.cost_weight, "latency": b.latency_weight},
            "exploration": b.exploration,
        }
        if b.frozen:
            out["bandit"]["frozen"] = True
    if policy.cascade is not None:
        out["cascade"] = _cascade_to_dict(policy.cascade)
    if policy.learned is not None:
        out["learned"] = {"trade_off": _plain(policy.learned.trade_off)} if policy.learned.trade_off else {}
    if policy.semantic is not None:
        out.update(_semantic_to_dict(policy.semantic))
    return out


def _plain(value):
    """3.0 -> 3 in exports, so a file that said 3 says 3 again."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# --- cascade (issue 12) -------------------------------------------------------------------------------------

CASCADE_KEYS = ("steps", "checks", "max_cost_usd")
MAX_CASCADE_STEPS = 5
MAX_CHECKS = 8
MAX_PATTERN_CHARS = 500
MAX_URL_CHARS = 2000
MAX_PHRASES, MAX_PHRASE_CHARS = 20, 200
MAX_CASCADE_COST_USD = Decimal(1000)
# type -> the keys it takes besides `type` (and which of them it needs)
_CHECK_KEYS = {
    "not-empty": ((), ()),
    "not-truncated": ((), ()),
    "json": ((), ()),
    "refusal": (("phrases",), ()),
    "regex": (("pattern",), ("pattern",)),
    "min-logprob": (("threshold",), ("threshold",)),
    "webhook": (("url", "pass_score", "timeout_ms"), ("url",)),
}
_CHECK_DEFAULTS = CheckSpec(type="")


def _parse_cascade(check: _Checker, raw: Mapping, *, strategy: str, deployments: tuple[str, ...]):
    if "cascade" not in raw:
        if strategy == "cascade":
            check.fail("cascade", "the cascade strategy needs cascade: {steps: [...], checks: [...]}")
        return None
    spec = check.mapping("cascade", raw["cascade"]) or {}
    for key in spec:
        if key not in CASCADE_KEYS:
            check.fail(f"cascade.{key}", f"unknown key; expected one of {', '.join(CASCADE_KEYS)}")
    steps = spec.get("steps")
    if not isinstance(steps, list) or not all(isinstance(s, str) and s for s in steps):
        check.fail("cascade.steps", "must be a list of this alias's deployments, cheapest first")
        steps = []
    elif not 2 <= len(steps) <= MAX_CASCADE_STEPS:
        check.fail("cascade.steps", f"must name 2 to {MAX_CASCADE_STEPS} deployments, not {len(steps)}")
    for index, step in enumerate(steps):
        if step not in deployments:
            check.fail(f"cascade.steps[{index}]", "is not one of this alias's deployments")
        elif step in steps[:index]:
            check.fail(f"cascade.steps[{index}]", "is listed twice")
    listed = spec.get("checks")
    checks: list[CheckSpec] = []
    if not isinstance(listed, list) or not listed:
        check.fail("cascade.checks", "must be a list of checks such as [{type: not-truncated}]")
    elif len(listed) > MAX_CHECKS:
        check.fail("cascade.checks", f"must list at most {MAX_CHECKS} checks, not {len(listed)}")
    else:
        for index, item in enumerate(listed):
            parsed = _parse_check(check, f"cascade.checks[{index}]", item)
            if parsed is not None:
                checks.append(parsed)
    max_cost = None
    if "max_cost_usd" in spec:
        max_cost = _parse_dollars(check, "cascade.max_cost_usd", spec["max_cost_usd"])
    return CascadePolicy(steps=tuple(steps), checks=tuple(checks), max_cost_usd=max_cost)


def _parse_check(check: _Checker, where: str, item: object) -> CheckSpec | None:
    item = check.mapping(where, item)
    if item is None:
        return None
    kind = item.get("type")
    if kind not in _CHECK_KEYS:
        check.fail(f"{where}.type", f"must be one of {', '.join(_CHECK_KEYS)}")
        return None
    allowed, needed = _CHECK_KEYS[kind]
    for key in item:
        if key != "type" and key not in allowed:
            expected = ", ".join(allowed) if allowed else "nothing besides type"
            check.fail(f"{where}.{key}", f"unknown key for {kind}; expected {expected}")
    for key in needed:
        if key not in item:
            check.fail(f"{where}.{key}", f"a {kind} check needs {key}")
    values: dict = {"type": kind}
    if "pattern" in item:
        values["pattern"] = _parse_pattern(check, f"{where}.pattern", item["pattern"])
    if "phrases" in item:
        phrases = item["phrases"]
        if (
            not isinstance(phrases, list)
            or not 1 <= len(phrases) <= MAX_PHRASES
            or not all(isinstance(p, str) and 1 <= len(p.strip()) <= MAX_PHRASE_CHARS for p in phrases)
        ):
            check.fail(
                f"{where}.phrases",
                f"must be a list of 1 to {MAX_PHRASES} phrases of 1 to {MAX_PHRASE_CHARS} characters",
            )
        else:
            values["phrases"] = tuple(dict.fromkeys(p.strip() for p in phrases))
    if "threshold" in item:
        # A mean log-probability: 0 is certainty, -20 is far below anything a model samples.
        number = check.number(f"{where}.threshold", item["threshold"], -100, 0, integer=False)
        values["threshold"] = None if number is None else float(number)
    if "url" in item:
        values["url"] = _parse_url(check, f"{where}.url", item["url"])
    if "pass_score" in item:
        number = check.number(f"{where}.pass_score", item["pass_score"], 0, 1, integer=False)
        if number is not None:
            values["pass_score"] = float(number)
    if "timeout_ms" in item:
        number = check.number(f"{where}.timeout_ms", item["timeout_ms"], 50, 10_000, integer=True)
        if number is not None:
            values["timeout_ms"] = number
    return CheckSpec(**values)


def _parse_pattern(check: _Checker, where: str, pattern: object) -> str:
    if not isinstance(pattern, str) or not 1 <= len(pattern) <= MAX_PATTERN_CHARS:
        check.fail(where, f"must be a regular expression of 1 to {MAX_PATTERN_CHARS} characters")
        return ""
    try:
        regex.compile(pattern)
    except (regex.error, RecursionError, OverflowError) as exc:
        check.fail(where, f"is not a valid regular expression: {str(exc)[:200]}")
        return ""
    return pattern


def _parse_url(check: _Checker, where: str, url: object) -> str:
    # Only its shape here (the engine resolves no names); the importer and the call itself apply routing/ssrf.py.
    if not isinstance(url, str) or not 1 <= len(url) <= MAX_URL_CHARS:
        check.fail(where, f"must be an http or https URL of at most {MAX_URL_CHARS} characters")
        return ""
    if not regex.match(r"https?://[^\s/?#@]+(/[^\s]*)?\Z", url):
        check.fail(where, "must be an http or https URL with a host and no credentials or spaces")
        return ""
    return url


def _parse_dollars(check: _Checker, where: str, raw: object) -> Decimal | None:
    # A string, as prices are: 0.05 as a float is not 0.05.
    if isinstance(raw, bool) or not isinstance(raw, str | int) or (isinstance(raw, str) and len(raw) > 32):
        check.fail(where, 'must be a dollar amount as a string, such as "0.05"')
        return None
    try:
        amount = Decimal(str(raw).strip())
    except InvalidOperation:
        check.fail(where, 'must be a dollar amount as a string, such as "0.05"')
        return None
    if not amount.is_finite() or not 0 < amount <= MAX_CASCADE_COST_USD:
        check.fail(where, f"must be above 0 and at most {MAX_CASCADE_COST_USD}")
        return None
    return amount


def _cascade_to_dict(cascade: CascadePolicy) -> dict:
    checks = []
    for spec in cascade.checks:
        allowed, needed = _CHECK_KEYS[spec.type]
        entry: dict = {"type": spec.type}
        for key in allowed:
            value = getattr(spec, key)
            if key in needed or value != getattr(_CHECK_DEFAULTS, key):
                entry[key] = list(value) if isinstance(value, tuple) else _plain(value)
        checks.append(entry)
    out: dict = {"steps": list(cascade.steps), "checks": checks}
    if cascade.max_cost_usd is not None:
        out["max_cost_usd"] = format(cascade.max_cost_usd, "f")
    return out


# --- semantic routing (issue 12) ----------------------------------------------------------------------------

SEMANTIC_KEYS = ("routes", "threshold", "default")
ROUTE_KEYS = ("name", "target", "examples")
MAX_ROUTES = 20
MAX_EXAMPLES_PER_ROUTE = 50
MAX_EXAMPLE_CHARS = 1000  # the embedder reads 128 tokens of each (routing/engine/embeddings.py): ~500 characters
MAX_EXAMPLES_CHARS = 100_000  # all routes' examples together: what one policy costs to embed and to store
MAX_NAME_CHARS = 100
MAX_TARGET_CHARS = 150  # a deployment's or an alias's name


def semantic_targets(policy: RoutingPolicy) -> list[tuple[str, str]]:
    """(path, name) of every semantic target and the default, as written: the importer checks that those which
    are not the alias's deployments name other aliases."""
    if policy.semantic is None:
        return []
    named = [(f"routes[{i}].target", route.target) for i, route in enumerate(policy.semantic.routes)]
    if policy.semantic.default:
        named.append(("default", policy.semantic.default))
    return named


def _parse_semantic(check: _Checker, raw: Mapping, *, strategy: str) -> SemanticPolicy | None:
    present = [key for key in SEMANTIC_KEYS if key in raw]
    if not present:
        if strategy == "semantic":
            check.fail("routes", "the semantic strategy needs routes: [{name, target, examples: [...]}]")
        return None
    if strategy != "semantic":
        check.fail(present[0], "is for the semantic strategy only")
        return None
    listed = raw.get("routes")
    routes: list[SemanticRoute] = []
    if not isinstance(listed, list) or not listed:
        check.fail("routes", "must be a list of routes such as {name: code, target: code-model, examples: [...]}")
    elif len(listed) > MAX_ROUTES:
        check.fail("routes", f"must list at most {MAX_ROUTES} routes, not {len(listed)}")
    else:
        names: set[str] = set()
        for index, item in enumerate(listed):
            route = _parse_route(check, f"routes[{index}]", item)
            if route is None:
                continue
            if route.name in names:
                check.fail(f"routes[{index}].name", f"{route.name!r} is the name of an earlier route")
            names.add(route.name)
            routes.append(route)
        total = sum(len(example) for route in routes for example in route.examples)
        if total > MAX_EXAMPLES_CHARS:
            check.fail("routes", f"the examples must come to at most {MAX_EXAMPLES_CHARS} characters, not {total}")
    threshold = SemanticPolicy.__dataclass_fields__["threshold"].default
    if "threshold" in raw:
        number = check.number("threshold", raw["threshold"], 0, 1, integer=False)
        threshold = threshold if number is None else float(number)
    default = ""
    if "default" in raw:
        default = _target_name(check, "default", raw["default"])
    return SemanticPolicy(routes=tuple(routes), threshold=threshold, default=default)


def _parse_route(check: _Checker, where: str, item: object) -> SemanticRoute | None:
    item = check.mapping(where, item)
    if item is None:
        return None
    for key in item:
        if key not in ROUTE_KEYS:
            check.fail(f"{where}.{key}", f"unknown key; expected one of {', '.join(ROUTE_KEYS)}")
    name = item.get("name")
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= MAX_NAME_CHARS:
        check.fail(f"{where}.name", f"must be a name of 1 to {MAX_NAME_CHARS} characters")
        name = ""
    target = _target_name(check, f"{where}.target", item.get("target"))
    examples = item.get("examples")
    if not isinstance(examples, list) or not 1 <= len(examples) <= MAX_EXAMPLES_PER_ROUTE:
        check.fail(f"{where}.examples", f"must be a list of 1 to {MAX_EXAMPLES_PER_ROUTE} example prompts")
        examples = []
    kept: list[str] = []
    for index, example in enumerate(examples):
        if not isinstance(example, str) or not 1 <= len(example.strip()) <= MAX_EXAMPLE_CHARS:
            check.fail(f"{where}.examples[{index}]", f"must be a prompt of 1 to {MAX_EXAMPLE_CHARS} characters")
        else:
            kept.append(example.strip())
    return SemanticRoute(name=str(name).strip(), target=target, examples=tuple(dict.fromkeys(kept)))


def _target_name(check: _Checker, where: str, value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_TARGET_CHARS or value != value.strip():
        check.fail(
            where, f"must name one of this alias's deployments or another alias (1 to {MAX_TARGET_CHARS} characters)"
        )
        return ""
    return value


def _semantic_to_dict(semantic: SemanticPolicy) -> dict:
    out: dict = {
        "routes": [
            {"name": route.name, "target": route.target, "examples": list(route.examples)} for route in semantic.routes
        ],
        "threshold": _plain(semantic.threshold),
    }
    if semantic.default:
        out["default"] = semantic.default
    return out
