"""The learned router's operating point, chosen on its training file alone by k-fold cross-validation.

Each line is predicted by a model trained on the other folds (out of fold), then routed by learned.rank, as the
router would, at every point of a grid of floors and trade-offs; a point's quality is the mean score of the
deployments it chose, its cost their estimated cost (the prompt at ~4 characters a token and
strategies.DEFAULT_EXPECTED_OUTPUT_TOKENS out, at each deployment's list price). The recommended point
(recommend) is the cheapest one whose quality, less one standard error, keeps `keep` plus a margin of the best
single deployment's. The margin is the optimism of choosing on the lines that score the choice, found by nesting:
each fold in turn is held out of the choice, the point is chosen on the other folds' out-of-fold predictions and
scored on the held-out fold, and the margin is the mean of (its quality share where chosen - its quality share
held out), at least 0.
Seeded: the same file, prices and seed give the same curve, margin and point, hence the same bytes.
"""

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from routing.engine import learned
from routing.engine.learned import CrossValidation, LearnedModel, OperatingPoint
from routing.engine.strategies import DEFAULT_EXPECTED_OUTPUT_TOKENS

FOLDS = 5
KEEP = 0.95
MIN_EXAMPLES = 2 * FOLDS  # fewer lines scoring every deployment: no cross-validation, no recommended point
FLOORS = tuple(round(0.30 + 0.01 * i, 2) for i in range(70))  # 0.30 ... 0.99
TRADE_OFFS = tuple(round(0.01 * i, 2) for i in range(1, 51))  # 0.01 ... 0.50
_GRID = tuple((floor, 0.0) for floor in FLOORS) + tuple((None, trade_off) for trade_off in TRADE_OFFS)
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
    fold_of = _folds(len(examples), seed=seed, folds=folds)
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
    """The out-of-fold cost/quality curve over FLOORS and TRADE_OFFS, the nested margin and the recommended point;
    None when fewer than MIN_EXAMPLES lines score every deployment (a routing choice can only be scored on those)."""
    complete = [index for index, (_, scores) in enumerate(examples) if all(d in scores for d in deployments)]
    if len(deployments) < 2 or len(complete) < MIN_EXAMPLES:
        return None
    predictions = out_of_fold(examples, deployments, seed=seed, folds=folds)
    fold_of = _folds(len(examples), seed=seed, folds=folds)
    scored = [
        _Line(
            predicted=[predictions[i][d] for d in deployments],
            scores=[examples[i][1][d] for d in deployments],
            costs=[_cost(examples[i][0], prices[d]) for d in deployments],
            fold=fold_of[i],
        )
        for i in complete
    ]
    best, curve = _curve(scored, keep=keep)
    shortfalls = nested_shortfalls(scored, keep=keep, folds=folds)
    margin = round(max(0.0, sum(shortfalls) / len(shortfalls)), 4) if shortfalls else 0.0
    return CrossValidation(
        folds=folds,
        examples=len(scored),
        keep=keep,
        best=deployments[best],
        best_quality=round(sum(line.scores[best] for line in scored) / len(scored), 4),
        curve=tuple(curve),
        recommended=recommend(curve, keep=keep, margin=margin),
        margin=margin,
        shortfalls=tuple(shortfalls),
    )


@dataclass(frozen=True, slots=True)
class _Line:
    """One line scoring every deployment: its out-of-fold predictions, scores, estimated costs and fold."""

    predicted: list[float]
    scores: list[float]
    costs: list[float]
    fold: int


def _curve(lines: Sequence["_Line"], *, keep: float) -> tuple[int, list[OperatingPoint]]:
    """The best single deployment on these lines (its index) and every grid point scored against it."""
    count = len(lines)
    means = [sum(line.scores[k] for line in lines) / count for k in range(len(lines[0].scores))]
    best = max(range(len(means)), key=lambda k: (means[k], -k))
    best_cost = sum(line.costs[best] for line in lines) or 1
    best_quality = means[best] or 1
    curve = []
    for floor, trade_off in _GRID:
        chosen = _route(lines, floor=floor, trade_off=trade_off)
        quality = [line.scores[k] for line, k in zip(lines, chosen, strict=True)]
        cost = sum(line.costs[k] for line, k in zip(lines, chosen, strict=True))
        mean = sum(quality) / count
        # Paired with the best deployment on the same lines: d = routed score - keep x the best's score.
        error = _standard_error([q - keep * line.scores[best] for q, line in zip(quality, lines, strict=True)])
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
    return best, curve


def nested_shortfalls(lines: Sequence["_Line"], *, keep: float, folds: int) -> list[float]:
    """Per fold held out of the choice: the recommended point's quality share on the other folds (where it was
    chosen) less its quality share on the held-out fold, against the same best deployment. The choice uses no
    margin (recommend as it was before one), and the predictions are the same out-of-fold ones, so this costs no
    training. A fold whose choice is no point, or with no lines, adds nothing."""
    shortfalls = []
    for fold in range(folds):
        inside = [line for line in lines if line.fold != fold]
        held_out = [line for line in lines if line.fold == fold]
        if not inside or not held_out:
            continue
        best, curve = _curve(inside, keep=keep)
        chosen = recommend(curve, keep=keep)
        if chosen is None:
            continue
        routed = _route(held_out, floor=chosen.floor, trade_off=chosen.trade_off)
        quality = sum(line.scores[k] for line, k in zip(held_out, routed, strict=True))
        best_quality = sum(line.scores[best] for line in held_out) or 1
        shortfalls.append(round(chosen.quality_share - quality / best_quality, 4))
    return shortfalls


def _route(lines: Sequence["_Line"], *, floor: float | None, trade_off: float) -> list[int]:
    return [learned.rank(line.predicted, line.costs, floor=floor, trade_off=trade_off)[0][0] for line in lines]


def _folds(count: int, *, seed: int, folds: int) -> list[int]:
    """Each line's fold: a seeded shuffle dealt round-robin (out_of_fold's, so the nested folds are its folds)."""
    order = list(range(count))
    random.Random(seed).shuffle(order)
    fold_of = [0] * count
    for position, index in enumerate(order):
        fold_of[index] = position % folds
    return fold_of


def recommend(curve: Sequence[OperatingPoint], *, keep: float, margin: float = 0.0) -> OperatingPoint | None:
    """The cheapest point whose quality_share_low is >= keep + margin: it keeps `keep` of the best deployment's
    quality by one standard error and the nested margin. Ties (the same cost and quality): floors before
    trade-offs, and the middle one of the tied run, the furthest from either edge of the plateau. None when no
    point qualifies."""
    bound = round(keep + margin, 4)  # the curve's shares are rounded to 4 places
    eligible = [point for point in curve if point.quality_share_low >= bound]
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
