"""A/B experiments in the engine alone: calls split between arms by their percentages (random under a seed, or
sticky per `user`), the arm goes first whatever the strategy ordered, and the decision names it."""

import random
from collections import Counter

import pytest

from core.values import ExperimentPolicy, RoutingPolicy
from routing.engine.constraints import Needs
from routing.engine.router import Engine
from tests.engine.test_constraints import target

ALIASES = {"smart": (target("cheap"), target("mid"), target("premium"))}
SPLIT = ExperimentPolicy(name="cheap-vs-mid", arms=(("cheap", 70), ("mid", 30)))


def decide(engine, *, user="", experiment=SPLIT, strategy="priority", aliases=ALIASES):
    policies = {"smart": RoutingPolicy(strategy=strategy, experiment=experiment)}
    return engine.decide("smart", aliases=aliases, policies=policies, needs=Needs(user=user)).decision


def test_calls_without_a_user_split_between_arms_by_their_percentages():
    engine = Engine(rng=random.Random(11))

    arms = Counter(decide(engine).arm for _ in range(4000))

    # Binomial(4000, 0.3): three standard deviations are 0.022.
    assert arms["mid"] / 4000 == pytest.approx(0.30, abs=0.025)
    assert arms["cheap"] / 4000 == pytest.approx(0.70, abs=0.025)


def test_the_arm_goes_first_and_the_strategys_order_follows_as_fail_over():
    decision = decide(Engine(rng=random.Random(1)), user="u-7", strategy="round-robin")

    assert decision.candidates[0] == decision.arm
    assert sorted(decision.candidates) == ["cheap", "mid", "premium"]
    assert decision.route_header().startswith(f"round-robin (experiment cheap-vs-mid: {decision.arm}; turn ")


def test_a_user_stays_on_one_arm_in_every_process_and_users_still_split():
    first, second = Engine(rng=random.Random(1)), Engine(rng=random.Random(2))  # two processes
    users = [f"user-{n}" for n in range(2000)]

    arms = {user: decide(first, user=user).arm for user in users}

    assert all(decide(second, user=user).arm == arms[user] for user in users[:300])
    assert Counter(arms.values())["mid"] / len(users) == pytest.approx(0.30, abs=0.035)


def test_arms_adding_up_to_under_100_leave_the_rest_to_the_strategy():
    engine = Engine(rng=random.Random(4))
    small = ExperimentPolicy(name="trial", arms=(("premium", 10),))

    arms = Counter(decide(engine, experiment=small).arm for _ in range(2000))

    assert set(arms) == {"premium", ""}
    assert arms["premium"] / 2000 == pytest.approx(0.10, abs=0.02)


def test_an_arm_the_call_cannot_use_is_no_arm():
    only_cheap = {"smart": (target("cheap"), target("premium"))}
    all_mid = ExperimentPolicy(name="mid-only", arms=(("mid", 100),))

    decision = decide(Engine(), experiment=all_mid, aliases=only_cheap)

    assert decision.arm == "" and decision.candidates == ["cheap", "premium"]
