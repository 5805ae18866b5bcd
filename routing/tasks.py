"""Celery entry points of routing, scheduled by beat (CELERY_BEAT_SCHEDULE in config/settings.py)."""

from celery import shared_task

from routing.control_plane import feed
from routing.proxy import responses_store


@shared_task(name="routing.tasks.prune_change_feed", ignore_result=True)
def prune_change_feed() -> int:
    return feed.prune()


@shared_task(name="routing.tasks.purge_expired_responses", ignore_result=True)
def purge_expired_responses() -> int:
    return responses_store.purge_expired()
