"""The nested margin (routing/engine/learned_cv.py): choosing the operating point on the same out-of-fold curve it
is scored on flatters it, so each fold in turn is held out of the choice and the chosen point is scored on it; the
mean shortfall (at least 0) raises the target the recommended point must keep. Repeatable, stored with the model,
and 0 for a version stored before it."""

import json
import random
import struct
import zlib
from decimal import Decimal

import pytest

from routing.engine import learned, learned_cv

DEPLOYMENTS = ("cheap", "premium")
PRICES = {"cheap": (Decimal(1), Decimal(1)), "premium": (Decimal(10), Decimal(10))}


def noisy_examples(seed: int) -> list[tuple[str, dict[str, float]]]:
    """80 lines on three topics; cheap is right on 90%, 60% or 20% of them by topic, premium on 90% of all."""
    rng = random.Random(seed)
    cheap_right = {"sql query": 0.9, "tax form": 0.6, "sonnet poem": 0.2}
    examples = []
    for n in range(80):
        topic = rng.choice(sorted(cheap_right))
        scores = {"cheap": float(rng.random() < cheap_right[topic]), "premium": float(rng.random() < 0.9)}
        examples.append((f"Please help with this {topic} number {n} word{rng.randrange(20)}", scores))
    return examples


NOISY = noisy_examples(2)  # a file whose held-out folds fall short of the point chosen on the others
CLEAN = [
    (f"Fix this SQL query number {n}: select the orders of customer {n}", {"cheap": 1.0, "premium": 1.0})
    for n in range(30)
] + [(f"Write a sonnet about the sea and the moon, poem {n}", {"cheap": 0.0, "premium": 1.0}) for n in range(30)]


@pytest.fixture(scope="module")
def noisy() -> learned.CrossValidation:
    return learned_cv.cross_validate(NOISY, DEPLOYMENTS, prices=PRICES)


def test_the_margin_is_the_mean_held_out_shortfall_and_at_least_zero(noisy):
    assert len(noisy.shortfalls) == learned_cv.FOLDS
    assert noisy.margin == round(sum(noisy.shortfalls) / len(noisy.shortfalls), 4) > 0
    # Every held-out choice on the clean file is as right as where it was chosen: no optimism, no margin.
    clean = learned_cv.cross_validate(CLEAN, DEPLOYMENTS, prices=PRICES)
    assert clean.margin == 0.0 and all(shortfall <= 0 for shortfall in clean.shortfalls)


def test_the_margin_is_repeatable_and_stored_with_the_model(noisy):
    again = learned_cv.cross_validate(NOISY, DEPLOYMENTS, prices=PRICES)
    model = learned_cv.fit(NOISY, DEPLOYMENTS, prices=PRICES)
    stored = learned.from_bytes(learned.to_bytes(model))

    assert (again.margin, again.shortfalls, again.recommended) == (noisy.margin, noisy.shortfalls, noisy.recommended)
    assert learned.to_bytes(learned_cv.fit(NOISY, DEPLOYMENTS, prices=PRICES)) == learned.to_bytes(model)
    assert stored.cross_validation == noisy and stored.cross_validation.margin == noisy.margin


def test_the_margin_moves_the_recommended_point_toward_more_quality(noisy):
    without = learned_cv.recommend(noisy.curve, keep=noisy.keep)
    chosen = noisy.recommended

    assert chosen is not None and without is not None
    assert chosen.quality_share_low >= noisy.keep + noisy.margin > without.quality_share_low
    assert chosen.quality > without.quality and chosen.cost_share > without.cost_share


def test_recommend_raises_the_target_by_the_margin():
    def point(cost_share: float, low: float) -> learned.OperatingPoint:
        return learned.OperatingPoint(None, 0.1, low, low, cost_share, low)

    curve = [point(0.3, 0.951), point(0.5, 0.97), point(0.8, 0.99)]

    assert learned_cv.recommend(curve, keep=0.95) == curve[0]
    assert learned_cv.recommend(curve, keep=0.95, margin=0.02) == curve[1]
    assert learned_cv.recommend(curve, keep=0.95, margin=0.05) is None


def test_a_version_stored_before_the_margin_loads_with_a_zero_margin():
    model = learned_cv.fit(CLEAN, DEPLOYMENTS, prices=PRICES)
    raw = zlib.decompress(learned.to_bytes(model))
    start = 4 + struct.calcsize("<BI") + struct.unpack_from("<BI", raw, 4)[1]
    (meta_bytes,) = struct.unpack_from("<I", raw, start)
    meta = json.loads(raw[start + 4 : start + 4 + meta_bytes])
    del meta["margin"], meta["shortfalls"]
    old_meta = json.dumps(meta).encode()
    old = raw[:start] + struct.pack("<I", len(old_meta)) + old_meta + raw[start + 4 + meta_bytes :]

    validation = learned.from_bytes(zlib.compress(old)).cross_validation

    assert (validation.margin, validation.shortfalls) == (0.0, ())
    assert validation.recommended == model.cross_validation.recommended
