"""Celery entry points of routing, scheduled by beat (CELERY_BEAT_SCHEDULE in config/settings.py)."""

from celery import shared_task

from routing.control_plane import feed


@shared_task(name="routing.tasks.prune_change_feed", ignore_result=True)
def prune_change_feed() -> int:
    return feed.prune()
