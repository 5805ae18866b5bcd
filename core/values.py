"""Plain values the adapters, the engine, the proxy and billing pass around. No Django here: bench/ drives the
engine and the adapters alone."""

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class ModelPrice:
    input_per_million: Decimal
    output_per_million: Decimal
    cached_input_per_million: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """One deployment, resolved for a call: where to send it, with what credential, at what price."""

    deployment: str  # the deployment's name in the catalogue
    provider: str  # the provider's name in the catalogue
    kind: str  # openai | azure-openai | anthropic | gemini | openai-compatible
    base_url: str  # no trailing slash
    model: str  # the upstream's own model id (Azure: the deployment name in the URL)
    price: ModelPrice
    api_key: str = field(default="", repr=False)
    api_version: str = ""  # Azure's api-version query parameter
    extra_headers: tuple[tuple[str, str], ...] = ()
    connect_timeout_s: float = 5.0
    timeout_s: float = 120.0
    max_output_tokens: int | None = None
    # What the engine chooses by (routing/engine/): the catalogue's facts and the operator's scores.
    context_window: int | None = None  # prompt + output tokens the model takes; None: unknown, not checked
    capabilities: frozenset[str] = frozenset()  # chat, embeddings, tools, vision, json; empty: not stated
    quality: float | None = None  # 0-1, the operator's score of this model for the alias's work
    region: str = ""  # where it runs (data residency), e.g. "eu"; "" unknown
    tags: frozenset[str] = frozenset()
    rpm_limit: int | None = None  # the provider's quota for this deployment, counted across processes
    tpm_limit: int | None = None
    speaks_responses: bool = False  # serves POST /responses natively (routing/providers/openai_responses.py)


@dataclass(slots=True)
class TokenUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    # True when the upstream reported nothing and we counted with a tokenizer.
    is_estimated: bool = False


# --- how an alias routes (the catalogue's `routing:` mapping; parsed by routing/engine/policy.py) ------------

STRATEGIES = (
    "priority",  # today's behaviour, the default: the alias's deployments in their listed order
    "cheapest",  # by this request's estimated cost (prices x counted prompt + expected output)
    "lowest-latency",  # by an EWMA of latency and time to first token, shared across processes
    "weighted",  # weighted random over `weights`
    "round-robin",
    "least-busy",  # fewest calls in flight in this process
    "cascade",  # part 2 (issue 12)
    "semantic",  # part 2
    "learned",  # part 2
    "bandit",  # part 2
)
PART_TWO_STRATEGIES = ("cascade", "semantic")  # handled before the common order (semantic: see SemanticPolicy)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """One call's attempt budget: attempts in all (fail-overs and retries, fallbacks included) and one deadline.
    Fail-over to another deployment is immediate; trying the same deployment again waits an exponential backoff
    with full jitter, or its Retry-After when longer."""

    max_attempts: int | None = None  # None: each candidate once (today's behaviour)
    base_delay_ms: int = 100
    max_delay_ms: int = 2000
    deadline_ms: int = 30000


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """Per deployment: open after `consecutive_failures`, or when the failed share of at least `min_calls`
    calls in the last `window_s` reaches `error_rate`; after `cooldown_s`, let `half_open_probes` calls through;
    one success closes it, a failure opens it again."""

    consecutive_failures: int = 5
    error_rate: float = 0.5
    window_s: float = 30.0
    cooldown_s: float = 30.0
    half_open_probes: int = 1
    min_calls: int = 10


@dataclass(frozen=True, slots=True)
class ExperimentPolicy:  # part 2: an A/B split of calls between deployments
    name: str
    arms: tuple[tuple[str, int], ...]  # (deployment, share)


@dataclass(frozen=True, slots=True)
class BanditPolicy:  # part 2: routing/engine/bandit.py
    quality_weight: float = 1.0
    cost_weight: float = 0.0
    latency_weight: float = 0.0
    exploration: float = 0.1  # share of calls sent to a uniformly drawn arm
    frozen: bool = False  # `bandit: {frozen: true}`: stop learning and exploring, serve the best posterior mean


@dataclass(frozen=True, slots=True)
class LearnedPolicy:  # part 2: routing/engine/learned.py
    # 0: the cheapest deployment predicted to meet the floor. Above 0: the best `predicted quality - trade_off x
    # (its estimated cost / the dearest one's)` among those that meet it (or among all, without a floor).
    trade_off: float = 0.0
    # The alias's latest trained model (routing/engine/learned.LearnedModel), attached by the snapshot loader;
    # None: not trained yet (priority order). Not part of the policy's value: the YAML never holds it.
    model: object = field(default=None, compare=False, repr=False)


# --- cascade (issue 12): try the cheap step, escalate when its answer fails a check ---------------------------

CHECK_TYPES = ("not-empty", "not-truncated", "json", "refusal", "regex", "min-logprob", "webhook")


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """One check a cascade step's answer must pass (routing/engine/checks.py runs them)."""

    type: str  # one of CHECK_TYPES
    pattern: str = ""  # regex: the answer (whitespace stripped) must contain a match
    phrases: tuple[str, ...] = ()  # refusal: fails when the answer contains one (case-insensitive); () defaults
    threshold: float | None = None  # min-logprob: the mean token log-probability must reach it
    url: str = ""  # webhook: the operator's verifier
    pass_score: float = 0.5  # webhook: {"score": x} passes when x >= pass_score
    timeout_ms: int = 2000  # webhook: slower is a failed check


@dataclass(frozen=True, slots=True)
class CascadePolicy:
    steps: tuple[str, ...]  # the alias's deployments, cheapest first; the last step's answer is final
    checks: tuple[CheckSpec, ...] = ()
    max_cost_usd: Decimal | None = None  # the climb stops before a step that would spend more than this in all


# --- semantic routing (issue 12): a prompt goes to the route of its nearest example ---------------------------


@dataclass(frozen=True, slots=True)
class SemanticRoute:
    name: str
    target: str  # one of the alias's deployments, or another alias
    examples: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SemanticPolicy:
    routes: tuple[SemanticRoute, ...]
    threshold: float = 0.6  # the best route's score (its nearest example's cosine similarity) must reach it
    default: str = ""  # a deployment or another alias; "": the alias's deployments in their listed order

    def examples(self) -> tuple[str, ...]:
        """Every route's examples, in route order (what routing/engine/embeddings.py embeds once per policy)."""
        return tuple(example for route in self.routes for example in route.examples)


@dataclass(frozen=True, slots=True)
class SemanticChoice:
    """Where routing/engine/semantic.py sent one prompt, and why (the decision record's `semantic`)."""

    route: str  # the route taken; "" when the default was
    target: str  # what it points at ("" with no default: the alias's own order)
    score: float | None  # the taken route's score, or the best one's when below the threshold; None: not scored
    best_route: str = ""  # the best-scoring route, taken or not
    why: str = ""  # when not scored: no text, the embedder unavailable

    def to_record(self) -> dict:
        return {
            "route": self.route,
            "target": self.target,
            "score": None if self.score is None else round(self.score, 4),
            "best_route": self.best_route,
            "why": self.why,
        }


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    strategy: str = "priority"
    min_quality: float | None = None  # a call may raise it with x-tollway-min-quality
    weights: tuple[tuple[str, float], ...] = ()  # (deployment, weight), for `weighted`
    fallbacks: tuple[str, ...] = ()  # other aliases, tried in order after this alias's deployments fail
    retry: RetryPolicy = RetryPolicy()
    breaker: BreakerPolicy = BreakerPolicy()
    experiment: ExperimentPolicy | None = None
    bandit: BanditPolicy | None = None
    cascade: CascadePolicy | None = None
    learned: LearnedPolicy | None = None
    semantic: SemanticPolicy | None = None  # `routes:`, `threshold:` and `default:` beside `strategy: semantic`

    def weight_of(self, deployment: str) -> float:
        for name, weight in self.weights:
            if name == deployment:
                return weight
        return 0.0 if self.weights else 1.0


DEFAULT_POLICY = RoutingPolicy()


# --- what the engine decided, and why (x-tollway-route, the usage record, /api/v1/routing/explain) ---------

# Why a deployment was not a candidate. Short: they go into the x-tollway-route header.
SKIP_REASONS = (
    "breaker-open",
    "context",  # prompt + requested output exceed its context window
    "capability",  # the request needs tools, vision, json or embeddings and it does not say it has them
    "region",  # outside the regions the team or key may use
    "tag",  # lacks a tag the team or key requires
    "quality",  # below the floor (min_quality or x-tollway-min-quality)
    "rpm-limit",  # at its provider's quota this minute
    "tpm-limit",
    "retry-after",  # the provider answered 429 with a Retry-After that has not passed yet
)


@dataclass(frozen=True, slots=True)
class Skip:
    deployment: str
    reason: str  # one of SKIP_REASONS
    detail: str = ""  # e.g. "needs 9,000 tokens, has 8,192"


@dataclass(frozen=True, slots=True)
class Attempt:
    deployment: str
    alias: str  # the alias it was reached through (a fallback's name, when it is one)
    status: int | None  # the upstream's status; None: no answer (connect error, timeout) or success before one
    error: str  # "" on success; else the upstream's error code or type
    latency_ms: float
    waited_ms: float = 0.0  # backoff slept before this attempt


@dataclass(slots=True)
class Decision:
    """Filled in as the engine goes, so it is right whatever is raised."""

    alias: str
    strategy: str = "priority"
    reason: str = ""  # the short why, e.g. "cheapest est. $0.00012"
    candidates: list[str] = field(default_factory=list)  # deployments in the order they would be tried
    skipped: list[Skip] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    fallback_aliases: list[str] = field(default_factory=list)  # fallbacks reached, in order
    estimates: dict[str, str] = field(default_factory=dict)  # deployment -> what it was ranked by (cost, ms)
    checks: list[dict] = field(default_factory=list)  # part 2: cascade checks
    arm: str = ""  # part 2: the experiment arm
    experiment: str = ""  # part 2: the alias's experiment's name when it has one (arm "" = the call got no arm)
    semantic: SemanticChoice | None = None  # part 2: the semantic route taken, and its score

    def route_header(self) -> str:
        """`x-tollway-route`: "cheapest; 2 skipped: breaker-open, context"."""
        text = self.strategy
        if self.reason:
            text = f"{text} ({self.reason})"
        if self.skipped:
            reasons = ", ".join(dict.fromkeys(skip.reason for skip in self.skipped))
            text = f"{text}; {len(self.skipped)} skipped: {reasons}"
        if self.fallback_aliases:
            text = f"{text}; fallback: {', '.join(self.fallback_aliases)}"
        return text

    def to_record(self) -> dict:
        """The whole decision as JSON-ready values, for the usage record and explain."""
        return {
            "alias": self.alias,
            "strategy": self.strategy,
            "reason": self.reason,
            "candidates": list(self.candidates),
            "skipped": [{"deployment": s.deployment, "reason": s.reason, "detail": s.detail} for s in self.skipped],
            "attempts": [
                {
                    "deployment": a.deployment,
                    "alias": a.alias,
                    "status": a.status,
                    "error": a.error,
                    "latency_ms": round(a.latency_ms, 3),
                    "waited_ms": round(a.waited_ms, 3),
                }
                for a in self.attempts
            ],
            "fallback_aliases": list(self.fallback_aliases),
            "estimates": dict(self.estimates),
            "checks": list(self.checks),
            "arm": self.arm,
            "experiment": self.experiment,
            "semantic": None if self.semantic is None else self.semantic.to_record(),
        }


# --- what the control plane keeps in memory (routing/control_plane/snapshot.py holds the current one) --------


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key and what it belongs to, as of the last change the process applied."""

    key_id: int
    key_prefix: str
    secret_hash: str
    tenant_id: int
    tenant_name: str
    team_id: int
    team_name: str
    allowed_aliases: frozenset[str] | None  # None: every alias
    expires_at: float | None  # epoch seconds
    is_revoked: bool
    rpm_limit: int | None
    tpm_limit: int | None
    # Data residency (the team's, narrowed by the key's): deployments outside these regions, or lacking one of
    # these tags, are skipped by the engine. None: any region.
    allowed_regions: frozenset[str] | None = None
    required_tags: frozenset[str] = frozenset()
    # Portal keys: their active subscriptions, oldest first, with the aliases each grants (budgets, limits and
    # records use the one that grants the called alias). Shared between keys: one team's keys hold one copy.
    grants: tuple[tuple[int, frozenset[str]], ...] = ()
    # The team's logging policy: False keeps no bodies (no stored /v1/responses, so no previous_response_id).
    stores_bodies: bool = True

    def subscription_for(self, alias: str) -> int | None:
        """The subscription that grants this alias to the key (the oldest, when several do)."""
        for subscription_id, aliases in self.grants:
            if alias in aliases:
                return subscription_id
        return None


@dataclass(frozen=True, slots=True)
class BudgetRule:
    """An active budget, as admission control needs it (billing/ledger)."""

    budget_id: int
    scope: str  # tenant | team | key | subscription
    target_id: int
    period: str  # daily | monthly
    limit_usd: Decimal | None
    limit_tokens: int | None
    action: str  # block | downgrade
    downgrade_alias: str = ""
    thresholds: tuple[int, ...] = ()  # percentages that notify once per period


@dataclass(frozen=True, slots=True)
class RateRule:
    rpm: int | None = None
    tpm: int | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    # alias -> deployments in priority order (enabled ones only)
    aliases: dict[str, tuple[Target, ...]] = field(default_factory=dict)
    # alias -> how it routes; an alias not here routes by priority (DEFAULT_POLICY)
    policies: dict[str, RoutingPolicy] = field(default_factory=dict)
    # alias -> the price "savings" are measured against (its baseline deployment's)
    baselines: dict[str, ModelPrice] = field(default_factory=dict)
    # (scope, target id) -> its active budgets
    budgets: dict[tuple[str, int], tuple[BudgetRule, ...]] = field(default_factory=dict)
    budget_by_id: dict[int, BudgetRule] = field(default_factory=dict)  # the same rules, by budget id
    # Cluster-wide rate limits beside each key's own: per team, and per subscription (product defaults applied)
    team_limits: dict[int, RateRule] = field(default_factory=dict)
    subscription_limits: dict[int, RateRule] = field(default_factory=dict)
    keys_have_limits: bool = False  # some live key has its own RPM/TPM
    version: int = 0  # the change feed's version this reflects
    loaded_at: float = 0.0  # when it was last known current (epoch seconds)
