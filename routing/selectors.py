"""Reads of the routing catalogue that more than one page or endpoint shares."""

from dataclasses import dataclass

from django.db.models import Prefetch, QuerySet
from django.db.models.functions import Substr

from routing.engine import learned
from routing.engine.learned import OperatingPoint
from routing.models import LearnedRouter, ModelAlias

# The start of a version's blob, which holds its cross-validation before the ~200 KB of weights: names (at most
# 50 deployments of 150 characters) and the curve's ~120 points compress to well under this.
LEARNED_HEAD_BYTES = 32_768


def learned_versions() -> QuerySet[LearnedRouter]:
    # Without the weights: a version's blob is ~200 KB, and what is shown of it is a few facts and the
    # recommended point, read from the blob's first few KB.
    return (
        LearnedRouter.objects.defer("weights")
        .annotate(weights_head=Substr("weights", 1, LEARNED_HEAD_BYTES))
        .order_by("-version")
    )


def with_latest_learned_router(aliases: QuerySet[ModelAlias]) -> QuerySet[ModelAlias]:
    """The aliases with `learned_newest_first` prefetched (one query for a page of them)."""
    return aliases.prefetch_related(Prefetch("learned_routers", learned_versions(), to_attr="learned_newest_first"))


def latest_learned_router(*, alias: ModelAlias) -> LearnedRouter | None:
    """The version the alias routes with (the latest trained), or None before train_router has run."""
    prefetched = getattr(alias, "learned_newest_first", None)
    if prefetched is not None:
        return prefetched[0] if prefetched else None
    return learned_versions().filter(alias=alias).first()


@dataclass(frozen=True, slots=True)
class LearnedRecommendation:
    """The operating point a version routes with when neither the alias nor the call sets a floor or a
    trade-off (routing/engine/learned_cv.py), and the target it was chosen to keep."""

    point: OperatingPoint | None  # None: no point kept keep + margin, so the alias takes the best predicted
    keep: float
    margin: float  # the nested cross-validation's margin added to keep (0 in versions stored before it)
    best: str  # the single deployment whose quality and cost the point's shares are of

    @property
    def target(self) -> float:
        return round(self.keep + self.margin, 4)


def learned_recommendation(*, router: LearnedRouter) -> LearnedRecommendation | None:
    """What the version's cross-validation recommended, or None when it has none (too few lines, or stored
    before cross-validation). Reads the blob's head only (learned_versions annotates it)."""
    head = getattr(router, "weights_head", None)
    try:
        validation = learned.read_cross_validation(bytes(head)) if head is not None else None
    except ValueError:
        head = None
    if head is None:  # not annotated, or the head was too short: the whole blob
        weights = LearnedRouter.objects.filter(pk=router.pk).values_list("weights", flat=True).first()
        validation = learned.read_cross_validation(bytes(weights)) if weights is not None else None
    if validation is None:
        return None
    return LearnedRecommendation(
        point=validation.recommended, keep=validation.keep, margin=validation.margin, best=validation.best
    )
