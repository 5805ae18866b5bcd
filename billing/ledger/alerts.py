"""Soft thresholds: when a settle carries a budget past one of its percentages, record it and notify — once
per budget, period and threshold across every process (the BudgetAlert row's uniqueness decides)."""

import asyncio
import logging
from datetime import UTC, datetime

from billing.ledger.counters import Counter, usd_to_ticks
from config.db_thread import run_in_db
from routing.control_plane import snapshot

log = logging.getLogger(__name__)
_seen: set[tuple[int, float, int]] = set()  # (budget, period start, threshold) this process already recorded
_pending: set[asyncio.Task] = set()


def crossed(total: int, limit: int, thresholds: tuple[int, ...]) -> list[int]:
    return [t for t in thresholds if limit > 0 and total * 100 >= limit * t]


def check_thresholds(counters: list[Counter], totals: list[int]) -> None:
    budget_by_id = snapshot.current().budget_by_id
    for counter, total in zip(counters, totals, strict=True):
        rule = budget_by_id.get(counter.budget_id) if counter.budget_id is not None else None
        if rule is None or not rule.thresholds:
            continue
        # A budget has a counter of a kind only when it has a limit of that kind.
        limit = usd_to_ticks(rule.limit_usd) if counter.kind == "usd" else rule.limit_tokens
        for threshold in crossed(total, limit, rule.thresholds):
            seen = (rule.budget_id, counter.window_start, threshold)
            if seen in _seen:
                continue
            _seen.add(seen)
            task = asyncio.get_running_loop().create_task(
                run_in_db(_record, rule.budget_id, counter.window_start, threshold)
            )
            _pending.add(task)
            task.add_done_callback(_done)


def _done(task: asyncio.Task) -> None:
    _pending.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("recording a budget alert failed", exc_info=task.exception())


def _record(budget_id: int, period_start: float, threshold: int) -> None:
    from billing import budgets

    budgets.record_threshold_crossed(
        budget_id=budget_id, period_start=datetime.fromtimestamp(period_start, tz=UTC), threshold=threshold
    )


async def drain() -> None:
    if _pending:
        await asyncio.gather(*_pending, return_exceptions=True)
