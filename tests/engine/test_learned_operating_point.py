"""The learned router's operating point (routing/engine/learned_cv.py), without Django: k-fold cross-validation on
the training file alone scores a grid of floors and trade-offs, recommends the cheapest point that keeps `keep` of
the best deployment's quality by one standard error, is repeatable, is stored with the model, and is what the
router uses when neither the alias nor the call sets a floor or a trade-off."""

import array
import dataclasses
import random
import struct
import zlib
from decimal import Decimal

import pytest

from core.values import ModelPrice, Target
from routing.engine import learned, learned_cv
from routing.engine.learned import OperatingPoint

DEPLOYMENTS = ("cheap", "premium")
PRICES = {"cheap": (Decimal(1), Decimal(1)), "premium": (Decimal(10), Decimal(10))}
# cheap is good at SQL and bad at poems; premium is good at both.
EXAMPLES = [
    (f"Fix this SQL query number {n}: select the orders of customer {n}", {"cheap": 1.0, "premium": 1.0})
    for n in range(30)
] + [(f"Write a sonnet about the sea and the moon, poem {n}", {"cheap": 0.0, "premium": 1.0}) for n in range(30)]
SQL = "Fix this SQL: SELECT name FROM users WHERE age > 30"
POEM = "Write a sonnet about autumn leaves and the moon"
TARGETS = [
    Target(deployment=name, provider="p", kind="openai", base_url="http://upstream", model=name, price=ModelPrice(
        Decimal(price), Decimal(price)))
    for name, price in (("premium", "10"), ("cheap", "1"))
]  # fmt: skip
COSTS = [Decimal(10), Decimal(1)]


@pytest.fixture(scope="module")
def model() -> learned.LearnedModel:
    return learned_cv.fit(EXAMPLES, DEPLOYMENTS, prices=PRICES)


def point(cost_share: float, low: float, *, floor: float | None = None, trade_off: float = 0.0) -> OperatingPoint:
    return OperatingPoint(
        floor, trade_off, quality=low, quality_share=low, cost_share=cost_share, quality_share_low=low
    )


def test_the_same_file_prices_and_seed_give_the_same_bytes_and_another_seed_other_folds(model):
    again = learned_cv.fit(EXAMPLES, DEPLOYMENTS, prices=PRICES)
    reseeded = learned_cv.out_of_fold(EXAMPLES, DEPLOYMENTS, seed=learned.SEED + 1, folds=5)

    assert learned.to_bytes(again) == learned.to_bytes(model)
    assert reseeded != learned_cv.out_of_fold(EXAMPLES, DEPLOYMENTS, seed=learned.SEED, folds=5)


def test_the_curve_scores_every_floor_and_trade_off_against_the_best_deployment(model):
    validation = model.cross_validation

    assert (validation.folds, validation.examples, validation.keep) == (5, 60, 0.95)
    assert (validation.best, validation.best_quality) == ("premium", 1.0)
    assert [p.floor for p in validation.curve[: len(learned_cv.FLOORS)]] == list(learned_cv.FLOORS)
    assert [p.trade_off for p in validation.curve[len(learned_cv.FLOORS) :]] == list(learned_cv.TRADE_OFFS)
    # Out of fold, SQL goes to cheap and poems to premium: all correct for about half the cost of premium alone.
    by_floor = {p.floor: p for p in validation.curve}
    assert by_floor[0.7].quality == 1.0 and 0.5 < by_floor[0.7].cost_share < 0.6
    assert by_floor[0.99].cost_share == 1.0  # nothing is predicted that sure of cheap


def test_the_recommended_point_is_the_cheapest_that_keeps_the_target_and_is_stored_with_the_model(model):
    recommended = model.cross_validation.recommended
    stored = learned.from_bytes(learned.to_bytes(model), version=4)

    assert recommended is not None and recommended.quality_share_low >= 0.95
    assert all(
        p.cost_share >= recommended.cost_share for p in model.cross_validation.curve if p.quality_share_low >= 0.95
    )
    assert stored.cross_validation == model.cross_validation


def test_recommend_takes_the_cheapest_point_whose_lower_bound_keeps_the_target():
    curve = [point(0.2, 0.94, floor=0.6), point(0.5, 0.96, floor=0.8), point(0.4, 0.951, trade_off=0.1)]

    assert learned_cv.recommend(curve, keep=0.95) == curve[2]
    assert learned_cv.recommend(curve, keep=0.955) == curve[1]
    assert learned_cv.recommend(curve, keep=0.97) is None


def test_between_equal_points_a_floor_in_the_middle_of_the_plateau_is_recommended():
    curve = [point(0.5, 1.0, trade_off=0.1), *(point(0.5, 1.0, floor=f) for f in (0.6, 0.7, 0.8)), point(0.6, 1.0)]

    assert learned_cv.recommend(curve, keep=0.95) == curve[2]


def test_a_file_too_small_or_one_deployment_gets_no_cross_validation():
    assert learned_cv.cross_validate(EXAMPLES[:5] + EXAMPLES[-4:], DEPLOYMENTS, prices=PRICES) is None
    assert learned_cv.cross_validate(EXAMPLES, ("premium",), prices=PRICES) is None
    # Lines that score only some deployments train the model but cannot score a routing choice.
    partial = [(text, {"premium": 1.0}) for text, _ in EXAMPLES]
    assert learned_cv.cross_validate(partial, DEPLOYMENTS, prices=PRICES) is None


def test_without_a_floor_or_a_trade_off_the_router_uses_the_recommended_point(model):
    recommended = model.cross_validation.recommended

    sql, sql_reason, _ = learned.choose(TARGETS, model, text=SQL, floor=None, trade_off=0.0, costs=COSTS)
    poem, poem_reason, _ = learned.choose(TARGETS, model, text=POEM, floor=None, trade_off=0.0, costs=COSTS)

    assert sql[0].deployment == "cheap" and poem[0].deployment == "premium"
    assert sql_reason.startswith(f"v0, recommended {recommended.label}: cheap 0.")
    assert poem_reason.startswith(f"v0, recommended {recommended.label}: premium 0.")


def test_an_explicit_floor_or_trade_off_overrides_the_recommended_point(model):
    _, floor_reason, _ = learned.choose(TARGETS, model, text=SQL, floor=0.9999, trade_off=0.0, costs=COSTS)
    costly, trade_off_reason, _ = learned.choose(TARGETS, model, text=POEM, floor=None, trade_off=5.0, costs=COSTS)

    assert floor_reason.startswith("v0, floor 0.9999 unmet: premium 0.")
    assert costly[0].deployment == "cheap" and trade_off_reason.startswith("v0, trade-off 5: cheap 0.")


def test_a_model_stored_before_cross_validation_still_loads_and_takes_the_best_predicted(model):
    # Format TLR1: magic, bits, names, weights; no cross-validation section.
    names = "\n".join(model.deployments).encode()
    weights = b"".join(array.array("f", w).tobytes() for w in model.weights)
    old_blob = zlib.compress(b"TLR1" + struct.pack("<BI", model.bits, len(names)) + names + weights)

    old = learned.from_bytes(old_blob, version=1)
    ordered, reason, _ = learned.choose(TARGETS, old, text=SQL, floor=None, trade_off=0.0, costs=COSTS)

    assert old.cross_validation is None and old.predict(SQL) == model.predict(SQL)
    assert ordered[0].deployment == "premium" and reason.startswith("v1: premium 0.")


def test_the_cross_validation_reads_from_the_start_of_the_blob_without_the_weights(model):
    # Weights as hard to compress as trained ones on a real file (this file's are mostly zeros).
    rng = random.Random(1)
    noisy = [array.array("f", (rng.uniform(-1, 1) for _ in w)) for w in model.weights]
    blob = learned.to_bytes(dataclasses.replace(model, weights=tuple(noisy)))

    assert len(blob) > 100_000
    assert learned.read_cross_validation(blob[:4096]) == model.cross_validation
    with pytest.raises(ValueError, match="ends before the cross-validation"):
        learned.read_cross_validation(blob[:200])
