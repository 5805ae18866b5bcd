"""The learned router's operating point, chosen on its training file alone by k-fold cross-validation.

Each line is predicted by a model trained on the other folds (out of fold), then routed by learned.rank, as the
router would, at every point of a grid of floors and trade-offs; a point's quality is the mean score of the
deployments it chose, its cost their estimated cost (the prompt at ~4 characters a token and
strategies.DEFAULT_EXPECTED_OUTPUT_TOKENS out, at each deployment's list price). The recommended point
(recommend) is the cheapest one whose quality keeps `keep` of the best single deployment's with a margin of one
standard error. Seeded: the same file, prices and seed give the same curve and point, hence the same bytes.
"""

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import Decimal

from routing.engine import learned
from routing.engine.learned import CrossValidation, LearnedModel, OperatingPoint
from routing.engine.strategies import DEFAULT_EXPECTED_OUTPUT_TOKENS

FOLDS = 5
KEEP = 0.95
MIN_EXAMPLES = 2 * FOLDS  # fewer lines scoring every deployment: no cross-validation, no recommended point
FLOORS = tuple(round(0.30 + 0.01 * i, 2) for i in range(70))  # 0.30 ... 0.99
TRADE_OFFS = tuple(round(0.01 * i, 2) for i in range(1, 51))  # 0.01 ... 0.50
CHARS_PER_TOKEN = 4  # a rough count: only the ratio of two deployments' costs on one prompt matters here

Prices = Mapping[str, tuple[Decimal, Decimal]]  # deployment -> (input, output) USD per million tokens


def fit(
    examples: Sequence[tuple[str, Mapping[str, float]]],
    deployments: Sequence[str],
    *,
    prices: Prices,
    seed: int = learned.SEED,
    keep: float = KEEP,
    folds: int = FOLDS,
) -> LearnedModel:
    """The model trained on every line, with its cross-validation (and recommended point) attached."""
    model = learned.train(examples, deployments, seed=seed)
    validation = cross_validate(examples, deployments, prices=prices, seed=seed, keep=keep, folds=folds)
    return replace(model, cross_validation=validation)


def out_of_fold(
    examples: Sequence[tuple[str, Mapping[str, float]]], deployments: Sequence[str], *, seed: int, folds: int
) -> list[dict[str, float]]:
    """Each line's predictions by the model trained without its fold (folds drawn by a seeded shuffle)."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    fold_of = [0] * len(examples)
    for position, index in enumerate(order):
        fold_of[index] = position % folds
    predictions: list[dict[str, float]] = [{} for _ in examples]
    for fold in range(folds):
        rest = [example for index, example in enumerate(examples) if fold_of[index] != fold]
        model = learned.train(rest, deployments, seed=seed)
        for index, (text, _) in enumerate(examples):
            if fold_of[index] == fold:
                predictions[index] = model.predict(text)
    return predictions


def cross_validate(
    examples: Sequence[tuple[str, Mapping[str, float]]],
    deployments: Sequence[str],
    *,
    prices: Prices,
    seed: int = learned.SEED,
    keep: float = KEEP,
    folds: int = FOLDS,
) -> CrossValidation | None:
    """The out-of-fold cost/quality curve over FLOORS and TRADE_OFFS and the recommended point; None when fewer
    than MIN_EXAMPLES lines score every deployment (a routing choice can only be scored on those)."""
    complete = [index for index, (_, scores) in enumerate(examples) if all(d in scores for d in deployments)]
    if len(deployments) < 2 or len(complete) < MIN_EXAMPLES:
        return None
    predictions = out_of_fold(examples, deployments, seed=seed, folds=folds)
    scored = [
        (
            [predictions[i][d] for d in deployments],
            [examples[i][1][d] for d in deployments],
            [_cost(examples[i][0], prices[d]) for d in deployments],
        )
        for i in complete
    ]
    means = [sum(row[1][k] for row in scored) / len(scored) for k in range(len(deployments))]
    best = max(range(len(deployments)), key=lambda k: (means[k], -k))
    best_cost = sum(row[2][best] for row in scored) or 1
    curve = []
    points = [(floor, 0.0) for floor in FLOORS] + [(None, trade_off) for trade_off in TRADE_OFFS]
    for floor, trade_off in points:
        chosen = [learned.rank(p, c, floor=floor, trade_off=trade_off)[0][0] for p, _, c in scored]
        quality = [row[1][k] for row, k in zip(scored, chosen, strict=True)]
        cost = sum(row[2][k] for row, k in zip(scored, chosen, strict=True))
        mean = sum(quality) / len(quality)
        # Paired with the best deployment on the same lines: d = routed score - keep x the best's score.
        error = _standard_error([q - keep * row[1][best] for q, row in zip(quality, scored, strict=True)])
        best_quality = means[best] or 1
        curve.append(
            OperatingPoint(
                floor=floor,
                trade_off=trade_off,
                quality=round(mean, 4),
                quality_share=round(mean / best_quality, 4),
                cost_share=round(cost / best_cost, 4),
                quality_share_low=round((mean - error) / best_quality, 4),
            )
        )
    return CrossValidation(
        folds=folds,
        examples=len(scored),
        keep=keep,
        best=deployments[best],
        best_quality=round(means[best], 4),
        curve=tuple(curve),
        recommended=recommend(curve, keep=keep),
    )


def recommend(curve: Sequence[OperatingPoint], *, keep: float) -> OperatingPoint | None:
    """The cheapest point whose quality_share_low is >= keep: it keeps `keep` of the best deployment's quality
    by one standard error. Ties (the same cost and quality): floors before trade-offs, and the middle one of the
    tied run, the furthest from either edge of the plateau. None when no point qualifies."""
    eligible = [point for point in curve if point.quality_share_low >= keep]
    if not eligible:
        return None
    cheapest = min((point.cost_share, -point.quality) for point in eligible)
    tied = [point for point in eligible if (point.cost_share, -point.quality) == cheapest]
    floors = sorted((p for p in tied if p.floor is not None), key=lambda p: p.floor)
    trade_offs = sorted((p for p in tied if p.floor is None), key=lambda p: p.trade_off)
    run = floors or trade_offs
    return run[(len(run) - 1) // 2]


def _standard_error(values: Sequence[float]) -> float:
    """The standard error of the mean of these values."""
    n = len(values)
    mean = sum(values) / n
    variance = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return math.sqrt(variance / n)


def _cost(text: str, price: tuple[Decimal, Decimal]) -> float:
    prompt_tokens = max(1, len(text) // CHARS_PER_TOKEN)
    # float: a ratio for choosing a point, never money that is billed or stored
    return float(prompt_tokens * price[0] + DEFAULT_EXPECTED_OUTPUT_TOKENS * price[1]) / 1_000_000
