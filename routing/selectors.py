"""Reads of the routing catalogue that more than one page or endpoint shares."""

from django.db.models import Prefetch, QuerySet

from routing.models import LearnedRouter, ModelAlias


def learned_versions() -> QuerySet[LearnedRouter]:
    # Without the weights: a version's blob is ~200 KB, and what is shown of it is four facts.
    return LearnedRouter.objects.defer("weights").order_by("-version")


def with_latest_learned_router(aliases: QuerySet[ModelAlias]) -> QuerySet[ModelAlias]:
    """The aliases with `learned_newest_first` prefetched (one query for a page of them)."""
    return aliases.prefetch_related(Prefetch("learned_routers", learned_versions(), to_attr="learned_newest_first"))


def latest_learned_router(*, alias: ModelAlias) -> LearnedRouter | None:
    """The version the alias routes with (the latest trained), or None before train_router has run."""
    prefetched = getattr(alias, "learned_newest_first", None)
    if prefetched is not None:
        return prefetched[0] if prefetched else None
    return learned_versions().filter(alias=alias).first()
