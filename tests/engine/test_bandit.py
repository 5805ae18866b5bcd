"""The bandit strategy alone (routing/engine/bandit.py), under a seeded random source: the reward formula, that it
converges on the deployment earning most, that exploration is bounded and shared fairly, that a frozen bandit
neither learns nor explores, and that boards share what they learn through a real Redis."""

import os
import random
import uuid
from collections import Counter
from decimal import Decimal

import pytest
import redis.asyncio as redis

from core.values import BanditPolicy, RoutingPolicy
from routing.engine.bandit import BanditBoard, SharedBandit, call_reward, dearest_cost, reward, to_unit
from routing.engine.constraints import Needs
from routing.engine.strategies import RoutingState, order
from tests.engine.test_constraints import target
from tests.engine.test_strategies import price

ARMS = ("cheap", "mid", "premium")
TRUE_MEAN = {"cheap": 0.2, "mid": 0.5, "premium": 0.8}  # chance a call of each is rated 1 (else 0)


def choose(board, policy, rng, *, arms=ARMS):
    ordered, reason, estimates = order(
        [target(name) for name in arms],
        alias="smart",
        policy=RoutingPolicy(strategy="bandit", bandit=policy),
        needs=Needs(),
        rng=rng,
        state=RoutingState(bandit=board),
    )
    return ordered[0].deployment, reason, estimates


def play(board, policy, rng, rounds: int) -> list[str]:
    picks = []
    for _ in range(rounds):
        arm, _, _ = choose(board, policy, rng)
        picks.append(arm)
        board.observe("smart", arm, 1.0 if rng.random() < TRUE_MEAN[arm] else 0.0, policy=policy)
    return picks


def test_the_reward_is_quality_times_feedback_less_weighted_cost_and_latency_ratios_mapped_onto_0_1():
    policy = BanditPolicy(quality_weight=1.0, cost_weight=0.5, latency_weight=0.5)

    raw = reward(policy, feedback=1.0, cost_ratio=0.2, latency_ratio=0.4)

    assert raw == pytest.approx(1.0 - 0.1 - 0.2)
    assert to_unit(policy, raw) == pytest.approx((0.7 + 1.0) / 2.0)  # [-1, 1] onto [0, 1]
    assert to_unit(policy, reward(policy, feedback=0.0, cost_ratio=1.0, latency_ratio=1.0)) == 0.0
    assert to_unit(policy, reward(policy, feedback=1.0, cost_ratio=0.0, latency_ratio=0.0)) == 1.0


def test_a_calls_reward_divides_its_cost_by_the_dearest_deployments_and_its_latency_by_the_slowest():
    policy = BanditPolicy(quality_weight=2.0, cost_weight=1.0, latency_weight=1.0)
    targets = [target("cheap", price=price("1", "2")), target("premium", price=price("10", "20"))]
    dearest = dearest_cost(targets, prompt_tokens=1000, completion_tokens=500)
    assert dearest == Decimal("0.02")

    rated = call_reward(
        policy, feedback=0.9, cost_usd=Decimal("0.002"), dearest_cost_usd=dearest, latency_ms=200.0, slowest_ms=800.0
    )

    raw = 2.0 * 0.9 - 1.0 * 0.1 - 1.0 * 0.25
    assert rated == pytest.approx((raw + 2.0) / 4.0)
    # The slowest is never faster than the call itself: a call slower than every estimate has ratio 1.
    slow = call_reward(
        policy, feedback=0.9, cost_usd=Decimal(0), dearest_cost_usd=dearest, latency_ms=900.0, slowest_ms=800.0
    )
    assert slow == pytest.approx((2.0 * 0.9 - 1.0 + 2.0) / 4.0)


def test_under_a_seeded_rng_it_converges_on_the_deployment_rated_best():
    policy = BanditPolicy(exploration=0.05)

    picks = play(BanditBoard(), policy, random.Random(12), 1500)

    late = Counter(picks[-500:])
    assert late["premium"] / 500 > 0.85, late
    # Converging costs something: early on every arm is tried.
    assert set(picks[:100]) == set(ARMS)


def test_converging_is_repeatable_under_the_same_seed():
    policy = BanditPolicy(exploration=0.1)

    assert play(BanditBoard(), policy, random.Random(3), 300) == play(BanditBoard(), policy, random.Random(3), 300)


def test_exploration_keeps_a_floor_under_every_arm_and_shares_forced_picks_equally():
    # premium is learned to be far ahead; exploration alone still sends each arm about exploration / 3.
    board = BanditBoard()
    for _ in range(200):
        board.observe("smart", "premium", 1.0)
        board.observe("smart", "cheap", 0.0)
        board.observe("smart", "mid", 0.0)
    policy = BanditPolicy(exploration=0.3)
    rng = random.Random(5)
    reasons, picks = Counter(), Counter()
    for _ in range(6000):
        arm, reason, _ = choose(board, policy, rng)
        picks[arm] += 1
        if reason == "explored":
            reasons[arm] += 1

    explored = sum(reasons.values())
    assert explored / 6000 == pytest.approx(0.3, abs=0.03)
    for arm in ARMS:
        # Binomial(1800, 1/3): three standard deviations are about 60 picks.
        assert reasons[arm] == pytest.approx(explored / 3, abs=70), reasons
        assert picks[arm] / 6000 >= 0.1 - 0.02  # the floor
    assert picks["cheap"] / 6000 <= 0.1 + 0.02  # no more than its share of the forced exploration


def test_a_frozen_bandit_serves_the_best_mean_and_learns_nothing():
    board = BanditBoard()
    for _ in range(10):
        board.observe("smart", "mid", 0.9)
        board.observe("smart", "premium", 0.6)
    frozen = BanditPolicy(exploration=1.0, frozen=True)  # exploring every call, were it not frozen
    before = {arm: board.posterior("smart", arm) for arm in ARMS}

    picks = Counter(choose(board, frozen, random.Random(seed))[0] for seed in range(50))
    board.observe("smart", "premium", 1.0, policy=frozen)

    assert picks == Counter({"mid": 50})
    assert {arm: board.posterior("smart", arm) for arm in ARMS} == before
    _, reason, estimates = choose(board, frozen, random.Random(1))
    assert reason == "frozen, mean 0.833"  # Beta(1 + 9, 1 + 1): 10 / 12
    assert estimates["mid"] == "mean 0.833, beta(10.0, 2.0)"


def test_the_decision_names_the_sampled_value_and_every_posterior():
    board = BanditBoard()
    board.observe("smart", "cheap", 1.0)

    arm, reason, estimates = choose(board, BanditPolicy(exploration=0.0), random.Random(2))

    assert reason.startswith("sampled 0.")
    assert estimates["cheap"].endswith("beta(2.0, 1.0)") and estimates["mid"].endswith("beta(1.0, 1.0)")
    assert list(estimates)[0] == arm


def test_taking_a_rating_back_restores_the_posterior():
    board = BanditBoard()
    board.observe("smart", "mid", 0.25)
    board.observe("smart", "mid", 0.25, count=-1)

    assert board.posterior("smart", "mid") == (1.0, 1.0)


REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/6"


@pytest.mark.anyio
async def test_what_one_process_learns_reaches_another_through_redis():
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5, socket_timeout=2)
    try:
        await client.ping()
    except (redis.ConnectionError, OSError):
        pytest.skip("no Redis")
    prefix = f"test-bandit-{uuid.uuid4().hex}"
    a, b = BanditBoard(), BanditBoard()
    shared_a = SharedBandit(a, redis_client=client, prefix=prefix)
    shared_b = SharedBandit(b, redis_client=client, prefix=prefix)
    try:
        b.observe("smart", "premium", 1.0)
        b.observe("smart", "premium", 0.5)
        a.observe("smart", "premium", 0.0)
        await shared_b.sync_once()
        await shared_a.sync_once()
        await shared_b.sync_once()

        assert a.posterior("smart", "premium") == b.posterior("smart", "premium") == (1 + 1.5, 1 + 1.5)
        await shared_a.sync_once()  # nothing new: sharing again adds nothing twice
        assert a.posterior("smart", "premium") == (2.5, 2.5)
    finally:
        await client.delete(f"{prefix}:bandit")
        await client.aclose()
