"""The recorded decision names the alias's experiment beside the arm, so aggregates can compare the arms of
one experiment and keep an earlier experiment's calls apart; calls the split gave no arm still name it."""

import random

from core.values import ExperimentPolicy, RoutingPolicy
from routing.engine.constraints import Needs
from routing.engine.router import Engine
from tests.engine.test_constraints import target

ALIASES = {"smart": (target("cheap"), target("premium"))}


def decision_of(engine: Engine, policy: RoutingPolicy):
    return engine.decide("smart", aliases=ALIASES, policies={"smart": policy}, needs=Needs()).decision


def test_a_call_with_an_arm_records_the_experiment_and_the_arm():
    policy = RoutingPolicy(experiment=ExperimentPolicy(name="cheap-only", arms=(("cheap", 100),)))

    record = decision_of(Engine(rng=random.Random(3)), policy).to_record()

    assert (record["experiment"], record["arm"]) == ("cheap-only", "cheap")


def test_a_call_the_split_gave_no_arm_still_names_the_experiment():
    policy = RoutingPolicy(experiment=ExperimentPolicy(name="nobody", arms=(("premium", 0),)))

    record = decision_of(Engine(rng=random.Random(3)), policy).to_record()

    assert (record["experiment"], record["arm"]) == ("nobody", "")


def test_an_alias_without_an_experiment_names_none():
    record = decision_of(Engine(rng=random.Random(3)), RoutingPolicy()).to_record()

    assert (record["experiment"], record["arm"]) == ("", "")
