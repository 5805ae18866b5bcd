"""Learned routing: predict each deployment's quality on this prompt, take the cheapest that meets the floor.

The model, chosen by 5-fold cross-validation on RouterBench's train split (README, "Learned routing"): hashed
features of the routing text (lower-cased word unigrams and bigrams in 2**FEATURE_BITS buckets, binary,
L2-normalised) and one L2-regularised logistic regression per deployment on its score (0-1: a fractional score
is a soft label). Trained by AdaGrad over a seeded shuffle, so the same file and seed give the same bytes.
Pure Python and no Django: bench/ and the tests drive it alone, and a prediction reads only the few hundred
buckets the prompt touches. Each stored version also carries its cross-validation on the training file and the
operating point recommended from it (routing/engine/learned_cv.py), which `choose` uses when neither the alias
nor the call sets a floor or a trade-off.
"""

import array
import json
import math
import random
import re
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from core.values import Target

FEATURE_BITS = 14
EPOCHS = 10
LEARNING_RATE = 0.05
L2 = 1e-3
SEED = 12
TEXT_CHARS = 2000  # as constraints.ROUTING_TEXT_CHARS: train on what the router sees at request time
_WORDS = re.compile(r"\w+")
_FORMAT_V1 = b"TLR1"  # weights only (models trained before cross-validation; still read)
_FORMAT = b"TLR2"  # the stored blob's magic and format version: weights and the cross-validation


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """One way to route with the model, as cross-validation scored it (routing/engine/learned_cv.py): a floor
    (the cheapest deployment predicted to meet it) or a trade-off (the best `quality - x * relative cost`)."""

    floor: float | None
    trade_off: float
    quality: float  # out-of-fold mean score of the deployments this point chose
    quality_share: float  # quality / the best single deployment's
    cost_share: float  # estimated cost / the best single deployment's
    # quality_share less one standard error of the paired difference (each line's routed score - keep x the best
    # deployment's score on it): the recommended point is the cheapest with this >= keep
    quality_share_low: float

    @property
    def label(self) -> str:
        return f"floor {self.floor:g}" if self.floor is not None else f"trade-off {self.trade_off:g}"


@dataclass(frozen=True, slots=True)
class CrossValidation:
    """What k-fold cross-validation on the training file found, stored with the model version."""

    folds: int
    examples: int  # the lines that score every deployment (the only ones a routing choice can be scored on)
    keep: float  # the target: keep this share of the best deployment's quality
    best: str  # the best single deployment on the file (highest mean score)
    best_quality: float
    curve: tuple[OperatingPoint, ...]
    recommended: OperatingPoint | None  # None: no point keeps `keep` + `margin` of the best's quality
    # The nested cross-validation's estimate of the optimism of choosing the point on these same lines (0 or
    # more; 0 in versions stored before it), added to `keep` for the recommended point, and each fold's shortfall.
    margin: float = 0.0
    shortfalls: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True, eq=False)
class LearnedModel:
    deployments: tuple[str, ...]
    bits: int
    weights: tuple[array.array, ...]  # per deployment: 2**bits float32 weights; the bias is its last entry
    version: int = 0  # the alias's model version (the database's), set when loaded
    cross_validation: CrossValidation | None = None  # None: trained without it (format TLR1, or too few lines)

    def predict(self, text: str) -> dict[str, float]:
        """Each deployment's predicted quality (0-1) on this routing text."""
        buckets = features(text, bits=self.bits)
        scale = 1.0 / math.sqrt(len(buckets) + 1)
        size = 1 << self.bits
        out = {}
        for name, w in zip(self.deployments, self.weights, strict=True):
            z = w[size] + scale * sum(w[b] for b in buckets)
            out[name] = _sigmoid(z)
        return out


def features(text: str, *, bits: int = FEATURE_BITS) -> list[int]:
    """The distinct buckets this text lights up (a stable hash: crc32, not Python's salted hash())."""
    words = _WORDS.findall(text[-TEXT_CHARS:].lower())
    mask = (1 << bits) - 1
    grams = set(words)
    grams.update(f"{a} {b}" for a, b in zip(words, words[1:], strict=False))
    return sorted({zlib.crc32(g.encode()) & mask for g in grams})


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def train(
    examples: Sequence[tuple[str, Mapping[str, float]]],
    deployments: Sequence[str],
    *,
    seed: int = SEED,
    epochs: int = EPOCHS,
    bits: int = FEATURE_BITS,
    l2: float = L2,
    learning_rate: float = LEARNING_RATE,
) -> LearnedModel:
    """One logistic regression per deployment over the examples that score it (a line may score only some)."""
    size = 1 << bits
    rows = [(features(text, bits=bits), scores) for text, scores in examples]
    weights = [array.array("d", bytes(8 * (size + 1))) for _ in deployments]
    squares = [array.array("d", bytes(8 * (size + 1))) for _ in deployments]
    order = list(range(len(rows)))
    rng = random.Random(seed)
    for _ in range(epochs):
        rng.shuffle(order)
        for index in order:
            buckets, scores = rows[index]
            scale = 1.0 / math.sqrt(len(buckets) + 1)
            for k, name in enumerate(deployments):
                label = scores.get(name)
                if label is None:
                    continue
                w, g2 = weights[k], squares[k]
                z = w[size] + scale * sum(w[b] for b in buckets)
                error = _sigmoid(z) - label
                # AdaGrad: a bucket seen often takes smaller steps; L2 only on the buckets this row touches.
                for b in buckets:
                    grad = error * scale + l2 * w[b]
                    g2[b] += grad * grad
                    w[b] -= learning_rate * grad / math.sqrt(g2[b])
                g2[size] += error * error
                w[size] -= learning_rate * error / math.sqrt(g2[size])
    stored = tuple(array.array("f", w) for w in weights)  # float32: half the bytes, far below the noise
    return LearnedModel(deployments=tuple(deployments), bits=bits, weights=stored)


# --- storage: a compact blob in the database (routing.models.LearnedRouter.weights) -----------------------------


def to_bytes(model: LearnedModel) -> bytes:
    """Magic, bits, the deployment names, the cross-validation as JSON (sorted keys: the same bytes every time),
    then each deployment's float32 weights (little-endian), zlib'd."""
    names = "\n".join(model.deployments).encode()
    validation = json.dumps(_validation_to_json(model.cross_validation), sort_keys=True, separators=(",", ":"))
    meta = validation.encode()
    header = _FORMAT + struct.pack("<BI", model.bits, len(names)) + names + struct.pack("<I", len(meta)) + meta
    body = b"".join(_little_endian(w).tobytes() for w in model.weights)
    return zlib.compress(header + body, 9)


def from_bytes(blob: bytes, *, version: int = 0) -> LearnedModel:
    raw = zlib.decompress(blob)
    if raw[:4] not in (_FORMAT, _FORMAT_V1):
        raise ValueError("not a learned router model (or a newer format)")
    bits, name_bytes = struct.unpack_from("<BI", raw, 4)
    start = 4 + struct.calcsize("<BI")
    deployments = tuple(raw[start : start + name_bytes].decode().split("\n"))
    offset, validation = start + name_bytes, None
    if raw[:4] == _FORMAT:
        (meta_bytes,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        validation = _validation_from_json(json.loads(raw[offset : offset + meta_bytes]))
        offset += meta_bytes
    width = 4 * ((1 << bits) + 1)
    weights = []
    for k in range(len(deployments)):
        w = array.array("f")
        w.frombytes(raw[offset + k * width : offset + (k + 1) * width])
        weights.append(_little_endian(w))
    return LearnedModel(
        deployments=deployments, bits=bits, weights=tuple(weights), version=version, cross_validation=validation
    )


def read_cross_validation(head: bytes) -> CrossValidation | None:
    """The cross-validation from the start of a stored blob, without the weights: it precedes them, so a prefix
    of the compressed bytes is enough (a few KB). None for format TLR1 or a model stored without it. Raises
    ValueError when the prefix stops before the cross-validation does (read more of the blob)."""
    raw = zlib.decompressobj().decompress(head)
    if raw[:4] == _FORMAT_V1:
        return None
    start = 4 + struct.calcsize("<BI")
    if raw[:4] != _FORMAT or len(raw) < start:
        raise ValueError("not the start of a learned router model (or a newer format)")
    _, name_bytes = struct.unpack_from("<BI", raw, 4)
    offset = start + name_bytes
    if len(raw) < offset + 4:
        raise ValueError("the prefix ends before the cross-validation")
    (meta_bytes,) = struct.unpack_from("<I", raw, offset)
    if len(raw) < offset + 4 + meta_bytes:
        raise ValueError("the prefix ends before the cross-validation")
    return _validation_from_json(json.loads(raw[offset + 4 : offset + 4 + meta_bytes]))


def _point_to_json(point: OperatingPoint) -> list:
    return [point.floor, point.trade_off, point.quality, point.quality_share, point.cost_share, point.quality_share_low]


def _validation_to_json(validation: CrossValidation | None) -> dict | None:
    if validation is None:
        return None
    return {
        "folds": validation.folds,
        "examples": validation.examples,
        "keep": validation.keep,
        "best": validation.best,
        "best_quality": validation.best_quality,
        "curve": [_point_to_json(p) for p in validation.curve],
        "recommended": None if validation.recommended is None else _point_to_json(validation.recommended),
        "margin": validation.margin,
        "shortfalls": list(validation.shortfalls),
    }


def _validation_from_json(data: dict | None) -> CrossValidation | None:
    if data is None:
        return None
    recommended = data["recommended"]
    return CrossValidation(
        folds=data["folds"],
        examples=data["examples"],
        keep=data["keep"],
        best=data["best"],
        best_quality=data["best_quality"],
        curve=tuple(OperatingPoint(*p) for p in data["curve"]),
        recommended=None if recommended is None else OperatingPoint(*recommended),
        margin=data.get("margin", 0.0),  # absent from the versions stored before the nested margin
        shortfalls=tuple(data.get("shortfalls", ())),
    )


def _little_endian(w: array.array) -> array.array:
    import sys

    if sys.byteorder == "little":
        return w
    swapped = array.array(w.typecode, w)
    swapped.byteswap()
    return swapped


# --- the training file -------------------------------------------------------------------------------------------

MAX_LINES = 200_000
MAX_LINE_CHARS = 200_000
MAX_PROMPT_CHARS = 100_000
MAX_ERRORS_SHOWN = 20


def parse_lines(lines: Iterable[str], *, deployments: Sequence[str]) -> tuple[list[tuple[str, dict]], list[str]]:
    """Examples from JSON lines `{"prompt": "...", "scores": {"<deployment>": 0..1}}`, and every problem as
    "line N: ..." (the examples mean nothing unless there are none). Blank lines are skipped."""
    import json

    known = set(deployments)
    examples: list[tuple[str, dict]] = []
    errors: list[str] = []
    count = 0
    for number, line in enumerate(lines, start=1):
        if number > MAX_LINES:
            errors.append(f"line {number}: more than {MAX_LINES} lines")
            break
        if not line.strip():
            continue
        count += 1
        if len(line) > MAX_LINE_CHARS:
            errors.append(f"line {number}: longer than {MAX_LINE_CHARS} characters")
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            errors.append(f"line {number}: not JSON ({str(exc)[:100]})")
            continue
        problem = _line_problem(item, known)
        if problem:
            errors.append(f"line {number}: {problem}")
            continue
        examples.append((item["prompt"], {name: float(score) for name, score in item["scores"].items()}))
    if not count and not errors:
        errors.append("the file has no examples")
    return examples, errors


def _line_problem(item: object, known: set[str]) -> str:
    if not isinstance(item, dict):
        return 'must be an object {"prompt": ..., "scores": {...}}'
    extra = set(item) - {"prompt", "scores"}
    if extra:
        return f"unknown key {sorted(extra)[0][:50]!r}; expected prompt and scores"
    prompt, scores = item.get("prompt"), item.get("scores")
    if not isinstance(prompt, str) or not prompt.strip():
        return "prompt must be a non-empty string"
    if len(prompt) > MAX_PROMPT_CHARS:
        return f"prompt is longer than {MAX_PROMPT_CHARS} characters"
    if not isinstance(scores, dict) or not scores:
        return "scores must be a non-empty mapping of deployment name to a number from 0 to 1"
    for name, score in scores.items():
        if name not in known:
            return f"scores names {name[:100]!r}, not one of the alias's deployments ({', '.join(sorted(known))})"
        if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
            return f"scores.{name[:100]} must be a number from 0 to 1"
    return ""


# --- at request time (and in cross-validation: it must route as the router does) ------------------------------


def rank(
    predicted: Sequence[float], costs: Sequence, *, floor: float | None, trade_off: float
) -> tuple[list[int], bool]:
    """Indices in the order to try (choose's rule, below), and whether any prediction met the floor."""
    dearest = max(costs, default=0) or 1
    indices = range(len(predicted))

    def value(i: int) -> float:
        return predicted[i] - trade_off * float(costs[i] / dearest)

    by_quality = sorted(indices, key=lambda i: (-predicted[i], costs[i], i))
    meeting = [i for i in indices if floor is not None and predicted[i] >= floor]
    if meeting:
        if trade_off > 0:
            first = sorted(meeting, key=lambda i: (-value(i), costs[i], i))
        else:
            first = sorted(meeting, key=lambda i: (costs[i], i))
        return first + [i for i in by_quality if i not in meeting], True
    if floor is None and trade_off > 0:
        return sorted(indices, key=lambda i: (-value(i), costs[i], i)), False
    return by_quality, False


def choose(
    targets: Sequence[Target],
    model: LearnedModel,
    *,
    text: str,
    floor: float | None,
    trade_off: float,
    costs: Sequence,
) -> tuple[list[Target], str, dict[str, str]]:
    """Targets in the order to try, the reason, and each one's prediction.

    With a floor: the cheapest whose prediction meets it (trade_off > 0: the best `quality - trade_off x cost
    relative to the dearest` among those that meet it), then the others, best predicted first; when none meets
    it, the best predicted first. Without a floor: by `quality - trade_off x relative cost`. A deployment the
    model was not trained on is predicted nothing and goes last.

    With neither a floor nor a trade-off (the alias sets none and the caller sends no x-tollway-min-quality), the
    model's own recommended point is used: the one its cross-validation chose (learned_cv.recommend)."""
    recommended = None
    if floor is None and trade_off == 0 and model.cross_validation is not None:
        recommended = model.cross_validation.recommended
        if recommended is not None:
            floor, trade_off = recommended.floor, recommended.trade_off
    predicted = model.predict(text)
    known = [i for i, t in enumerate(targets) if t.deployment in predicted]
    unknown = [i for i, t in enumerate(targets) if t.deployment not in predicted]
    ranked_known, meeting = rank(
        [predicted[targets[i].deployment] for i in known], [costs[i] for i in known], floor=floor, trade_off=trade_off
    )
    ranked = [known[j] for j in ranked_known] + unknown
    estimates = {
        targets[i].deployment: f"predicted {predicted[targets[i].deployment]:.2f}" if i in known else "not trained"
        for i in ranked
    }
    if not known:
        return [targets[i] for i in ranked], f"v{model.version}: none of these trained, priority order", estimates
    top = targets[ranked[0]].deployment
    said = [f"v{model.version}"]
    if recommended is not None:
        said.append(f"recommended {recommended.label}" + ("" if floor is None or meeting else " unmet"))
    elif floor is not None:
        said.append(f"floor {floor:g}" if meeting else f"floor {floor:g} unmet")
    if trade_off > 0 and recommended is None:
        said.append(f"trade-off {trade_off:g}")
    reason = f"{', '.join(said)}: {top} {predicted[top]:.2f}"
    if floor is not None and not meeting:
        reason += " (best predicted)"
    return [targets[i] for i in ranked], reason, estimates
