"""Celery entry points of billing, scheduled by beat (CELERY_BEAT_SCHEDULE in config/settings.py). Each is safe
to run twice and on several workers at once."""

from celery import shared_task

from billing import aggregation, budgets, retention


@shared_task(name="billing.tasks.aggregate_usage", ignore_result=True)
def aggregate_usage() -> int:
    return aggregation.aggregate_pending()


@shared_task(name="billing.tasks.purge_expired_usage", ignore_result=True)
def purge_expired_usage() -> int:
    return retention.purge_expired_usage()


@shared_task(name="billing.tasks.reconcile_budgets", ignore_result=True)
def reconcile_budgets() -> int:
    """Give back reservations of gateway processes that died, then compare budget counters with the usage
    records; returns how many drifted (each is logged)."""
    budgets.release_stale_reservations()
    return sum(1 for row in budgets.reconcile() if row["drift_usd"])


# Queued by budgets.record_threshold_crossed; defined beside the budget services.
send_budget_webhook = budgets.send_budget_webhook
