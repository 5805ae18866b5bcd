"""A/B experiments: an alias's `experiment: {name, arms: {deployment: percent}}` splits its calls between arms.

A layer above the strategy, whichever it is: the strategy orders the eligible deployments, then the call's arm is
moved to the front (the rest stay in the strategy's order as its fail-over). A call's point in [0, 100) comes
from a stable hash of the experiment's name and the request's `user` when it sends one (the same user lands on
the same arm in every process and after restarts; renaming the experiment reshuffles), else from the engine's
random source. Arms cover [0, their sum); a point past the sum (arms adding up to under 100) is no arm: the
strategy alone decides, and the decision's arm is "". An arm the call cannot use (skipped for its breaker, its
context window...) is no arm either, so a comparison never counts a call its arm did not serve.
"""

import hashlib
import random

from core.values import ExperimentPolicy, Target


def point_of(experiment: ExperimentPolicy, *, user: str, rng: random.Random) -> float:
    if user:
        digest = hashlib.sha256(f"{experiment.name}\0{user}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 * 100
    return rng.random() * 100


def arm_for(experiment: ExperimentPolicy, point: float) -> str:
    edge = 0.0
    for deployment, share in experiment.arms:
        edge += share
        if point < edge:
            return deployment
    return ""


def apply(
    ordered: list[Target], experiment: ExperimentPolicy, *, user: str, rng: random.Random
) -> tuple[list[Target], str]:
    """(the targets with the call's arm first, the arm or "")."""
    arm = arm_for(experiment, point_of(experiment, user=user, rng=rng))
    chosen = [t for t in ordered if t.deployment == arm]
    if not chosen:
        return ordered, ""
    return chosen + [t for t in ordered if t.deployment != arm], arm
