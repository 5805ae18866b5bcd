"""The `bandit` strategy: Thompson sampling over an alias's eligible deployments, learning from feedback.

Each (alias, deployment) arm keeps a Beta(alpha, beta) posterior of its reward, starting at Beta(1, 1). A call's
reward is the issue's formula under the alias's `bandit.weights`:

    quality x feedback - cost x (call's cost / dearest deployment's cost for it) - latency x (its latency / slowest's)

which lies in [-(cost + latency), quality]; it is mapped linearly onto [0, 1] and added fractionally (alpha += r,
beta += 1 - r), the usual Bernoulli-to-continuous extension of Thompson sampling: the posterior mean still
tracks the arm's mean reward, and a sure reward of 1 or 0 is the plain Bernoulli update. An attempt that errored
(and a failed cascade check: `observe(alias, deployment, 0.0)`) is reward 0 for its arm. A call that answered
but got no feedback teaches nothing: its quality is unknown.

Choosing: with probability `exploration` one eligible arm is picked uniformly (so each of n arms gets at least
exploration / n of the calls, and none more than its 1/n of the forced picks); otherwise each arm's posterior is
sampled with the engine's random source and the highest sample goes first, the rest in sample order as the
fail-over. `frozen: true` neither learns nor explores: the highest posterior mean goes first, every time.

Per process in a BanditBoard, all in memory on the hot path; SharedBandit adds each process's observations to
one Redis hash (HINCRBYFLOAT, so they add up across processes and outlive a restart) and reads the totals back,
so feedback arriving at one process teaches all of them within about a second. Django-free.
"""

import asyncio
import json
import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from redis.exceptions import RedisError

from core.values import BanditPolicy, Target

log = logging.getLogger(__name__)

PRIOR = (1.0, 1.0)  # Beta(1, 1): uniform, an arm nobody has rated is as likely good as bad
MAX_EVIDENCE = 1e12  # a total read from Redis beyond this is garbage, not feedback
MAX_FIELDS_READ = 20_000  # aliases x deployments x 2; a hash grown past this is read in part
MAX_NAME_CHARS = 150

Arm = tuple[str, str]  # (alias, deployment)


def reward(policy: BanditPolicy, *, feedback: float, cost_ratio: float, latency_ratio: float) -> float:
    """The issue's formula, unscaled: quality x feedback - cost x cost_ratio - latency x latency_ratio."""
    return (
        policy.quality_weight * _unit(feedback)
        - policy.cost_weight * _unit(cost_ratio)
        - policy.latency_weight * _unit(latency_ratio)
    )


def to_unit(policy: BanditPolicy, raw: float) -> float:
    """A reward from `reward()` mapped linearly onto [0, 1]: the worst possible is 0, the best 1."""
    low = -(policy.cost_weight + policy.latency_weight)
    span = policy.quality_weight - low
    if span <= 0:
        return 0.5  # every weight 0: nothing to prefer
    return _unit((raw - low) / span)


def call_reward(
    policy: BanditPolicy,
    *,
    feedback: float,
    cost_usd: Decimal,
    dearest_cost_usd: Decimal,
    latency_ms: float | None,
    slowest_ms: float | None,
) -> float:
    """One rated call's reward in [0, 1]. The dearest cost is what the same tokens cost on the alias's dearest
    deployment; the slowest latency, the slowest deployment's (never below this call's own)."""
    cost_ratio = float(cost_usd / dearest_cost_usd) if dearest_cost_usd > 0 else 0.0
    latency_ratio = 0.0
    if latency_ms is not None and latency_ms > 0:
        slowest = max(latency_ms, slowest_ms or 0.0)
        latency_ratio = latency_ms / slowest
    return to_unit(policy, reward(policy, feedback=feedback, cost_ratio=cost_ratio, latency_ratio=latency_ratio))


def dearest_cost(targets: Sequence[Target], *, prompt_tokens: int, completion_tokens: int) -> Decimal:
    """What these tokens would have cost on the dearest of the deployments."""
    costs = [
        (prompt_tokens * t.price.input_per_million + completion_tokens * t.price.output_per_million) / 1_000_000
        for t in targets
    ]
    return max(costs, default=Decimal(0))


@dataclass(frozen=True, slots=True)
class Choice:
    order: list[int]  # indexes into the given targets, the chosen one first
    sampled: list[float]  # per target: its posterior sample (frozen: its mean)
    posteriors: list[tuple[float, float]]  # per target: (alpha, beta)
    how: str  # "sampled" | "explored" | "frozen"


class BanditBoard:
    """Every arm's posterior in this process: what Redis last said all processes learned, plus what this
    process learned since it last shared."""

    def __init__(self) -> None:
        self._shared: dict[Arm, tuple[float, float]] = {}  # totals read from Redis (this process's included)
        self._unsent: dict[Arm, list[float]] = {}  # learned here, not yet added to Redis
        self._sending: dict[Arm, list[float]] = {}  # being added right now (counted until the totals are back)

    def observe(
        self, alias: str, deployment: str, reward: float, *, policy: BanditPolicy | None = None, count: float = 1.0
    ) -> None:
        """Add `count` observations of a reward in [0, 1] (count -1 takes one back: a rating replaced). A frozen
        policy learns nothing: pass the alias's, and the caller need not know."""
        if policy is not None and policy.frozen:
            return
        if not _is_finite(reward) or not _is_finite(count):
            return
        r = _unit(reward)
        delta = self._unsent.setdefault((alias, deployment), [0.0, 0.0])
        delta[0] += count * r
        delta[1] += count * (1.0 - r)

    def posterior(self, alias: str, deployment: str) -> tuple[float, float]:
        arm = (alias, deployment)
        alpha, beta = PRIOR
        for source in (self._shared.get(arm), self._unsent.get(arm), self._sending.get(arm)):
            if source is not None:
                alpha, beta = alpha + source[0], beta + source[1]
        # A rating taken back before its own reached Redis can dip below the prior for a moment.
        return max(alpha, PRIOR[0]), max(beta, PRIOR[1])

    def choose(self, alias: str, deployments: Sequence[str], policy: BanditPolicy, rng: random.Random) -> Choice:
        posteriors = [self.posterior(alias, d) for d in deployments]
        n = len(deployments)
        if policy.frozen:
            means = [a / (a + b) for a, b in posteriors]
            order = sorted(range(n), key=lambda i: (-means[i], i))
            return Choice(order, means, posteriors, "frozen")
        explored = n > 1 and rng.random() < policy.exploration
        sampled = [rng.betavariate(a, b) for a, b in posteriors]
        order = sorted(range(n), key=lambda i: (-sampled[i], i))
        if explored:
            pick = rng.randrange(n)
            order = [pick, *(i for i in order if i != pick)]
        return Choice(order, sampled, posteriors, "explored" if explored else "sampled")

    # --- sharing (SharedBandit) -------------------------------------------------------------------------------

    def start_sending(self) -> dict[Arm, tuple[float, float]]:
        self._sending, self._unsent = self._unsent, {}
        return {arm: (d[0], d[1]) for arm, d in self._sending.items() if d[0] or d[1]}

    def sent(self, totals: dict[Arm, tuple[float, float]]) -> None:
        """Redis took what was being sent; `totals` is every process's, that included."""
        self._shared = totals
        self._sending = {}

    def not_sent(self) -> None:
        """Redis failed: what was being sent waits for the next round."""
        for arm, (alpha, beta) in self._sending.items():
            delta = self._unsent.setdefault(arm, [0.0, 0.0])
            delta[0] += alpha
            delta[1] += beta
        self._sending = {}


def order_targets(
    targets: list[Target], *, alias: str, policy: BanditPolicy, rng: random.Random, board: BanditBoard
) -> tuple[list[Target], str, dict[str, str]]:
    """The strategies' Ordered: targets by this call's draw, the reason, each arm's sample and posterior."""
    choice = board.choose(alias, [t.deployment for t in targets], policy, rng)
    label = "mean" if choice.how == "frozen" else "sampled"
    estimates = {
        targets[i].deployment: f"{label} {choice.sampled[i]:.3f}, beta({choice.posteriors[i][0]:.1f}, "
        f"{choice.posteriors[i][1]:.1f})"
        for i in choice.order
    }
    first = choice.order[0]
    reason = f"{choice.how} {choice.sampled[first]:.3f}" if choice.how != "explored" else "explored"
    if choice.how == "frozen":
        reason = f"frozen, mean {choice.sampled[first]:.3f}"
    return [targets[i] for i in choice.order], reason, estimates


class SharedBandit:
    """Adds this process's observations to the hash `{prefix}:bandit` (one field per arm and parameter) every
    `interval_s` and reads every arm's totals back. Never on the request path; a Redis failure keeps the
    observations for the next round and is logged once."""

    def __init__(self, board: BanditBoard, *, redis_client, prefix: str, interval_s: float = 1.0) -> None:
        self.board = board
        self.redis = redis_client
        self.key = f"{prefix}:bandit"
        self.interval_s = interval_s
        self._is_failing = False
        self._has_crashed = False

    async def sync_once(self) -> None:
        deltas = self.board.start_sending()
        try:
            if deltas:
                pipe = self.redis.pipeline(transaction=False)
                for (alias, deployment), (alpha, beta) in deltas.items():
                    pipe.hincrbyfloat(self.key, _field(alias, deployment, "a"), alpha)
                    pipe.hincrbyfloat(self.key, _field(alias, deployment, "b"), beta)
                await pipe.execute()
            totals = await self._read_totals()
        except (RedisError, OSError) as error:
            # A pipeline that failed part-way may have added some: counting those twice is the lesser harm
            # against losing every rating of an outage.
            self.board.not_sent()
            if not self._is_failing:
                self._is_failing = True
                log.warning("bandit sharing paused: Redis failed (%s); trying every %s s", error, self.interval_s)
            return
        if self._is_failing:
            self._is_failing = False
            log.info("bandit sharing works again")
        self.board.sent(totals)

    async def run_forever(self) -> None:
        while True:
            try:
                await self.sync_once()
            except Exception:
                if not self._has_crashed:
                    self._has_crashed = True
                    log.exception("bandit sharing failed; trying again every %s s", self.interval_s)
            await asyncio.sleep(self.interval_s)

    async def _read_totals(self) -> dict[Arm, tuple[float, float]]:
        values: dict = {}
        cursor = 0
        while len(values) < MAX_FIELDS_READ:
            cursor, page = await self.redis.hscan(self.key, cursor=cursor, count=1000)
            values.update(page)
            if cursor == 0:
                break
        totals: dict[Arm, list[float]] = {}
        for field, value in values.items():
            parsed = _parse(field, value)
            if parsed is None:
                continue  # garbage, or another version's: ignored
            arm, which, amount = parsed
            totals.setdefault(arm, [0.0, 0.0])[0 if which == "a" else 1] = amount
        return {arm: (a, b) for arm, (a, b) in totals.items()}


def _field(alias: str, deployment: str, which: str) -> str:
    return json.dumps([alias, deployment, which], separators=(",", ":"))


def _parse(field, value) -> tuple[Arm, str, float] | None:
    try:
        alias, deployment, which = json.loads(field)
        amount = float(value)
    except (TypeError, ValueError):
        return None
    if not all(isinstance(s, str) and 0 < len(s) <= MAX_NAME_CHARS for s in (alias, deployment)):
        return None
    if which not in ("a", "b") or not math.isfinite(amount) or not -MAX_EVIDENCE <= amount <= MAX_EVIDENCE:
        return None
    return (alias, deployment), which, amount


def _unit(value: float) -> float:
    return min(max(float(value), 0.0), 1.0)


def _is_finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
