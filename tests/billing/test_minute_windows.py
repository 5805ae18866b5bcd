"""Windows and periods at their edges: a call in the first instant of a minute, day or month counts in the new
one, the last instant in the old one, and a month is as long as the calendar says."""

from datetime import UTC, datetime

import pytest

from billing.ledger.counters import Counter, budget_period, minute_window
from billing.ledger.plan import NOTHING_NEEDED, counters_for
from billing.ledger.stores import MemoryStore
from core.values import BudgetRule, Snapshot
from tests.factories import principal


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def rpm_counter(now: float, *, rpm: int) -> Counter:
    (counter,) = counters_for(Snapshot(), principal(rpm=rpm), subscription_id=None, need=NOTHING_NEEDED, now=now)
    return counter


@pytest.mark.parametrize(
    "moment, window_start",
    [
        ("2026-11-24T17:06:00", "2026-11-24T17:06:00"),
        ("2026-11-24T17:06:00.400", "2026-11-24T17:06:00"),
        ("2026-11-24T17:06:00.999", "2026-11-24T17:06:00"),
        ("2026-11-24T17:06:59.999", "2026-11-24T17:06:00"),
        ("2026-11-24T17:05:59.999", "2026-11-24T17:05:00"),
        ("2026-11-24T23:59:59.500", "2026-11-24T23:59:00"),
        ("2026-11-25T00:00:00", "2026-11-25T00:00:00"),
    ],
)
def test_a_moment_belongs_to_the_calendar_minute_it_falls_in(moment, window_start):
    assert minute_window(at(moment)) == (at(window_start), at(window_start) + 60)


def test_a_call_in_the_first_second_of_a_minute_counts_in_that_minute_not_the_one_before():
    last_of_old = rpm_counter(at("2026-11-24T17:05:59.900"), rpm=1)
    first_of_new = rpm_counter(at("2026-11-24T17:06:00.300"), rpm=1)
    later_in_new = rpm_counter(at("2026-11-24T17:06:59.900"), rpm=1)

    assert last_of_old.key != first_of_new.key == later_in_new.key
    assert first_of_new.key == f"rpm:key:3:{int(at('2026-11-24T17:06:00')) // 60}"
    assert (first_of_new.window_start, first_of_new.window_end) == (
        at("2026-11-24T17:06:00"),
        at("2026-11-24T17:07:00"),
    )


@pytest.mark.anyio
async def test_a_limit_of_one_a_minute_admits_one_call_each_side_of_the_minute_boundary():
    store = MemoryStore()

    async def admitted(moment: str) -> bool:
        now = at(moment)
        return isinstance(await store.reserve([rpm_counter(now, rpm=1)], now), list)

    outcomes = [
        await admitted("2026-11-24T17:05:59.500"),
        await admitted("2026-11-24T17:05:59.999"),
        await admitted("2026-11-24T17:06:00.000"),
        await admitted("2026-11-24T17:06:00.700"),
        await admitted("2026-11-24T17:07:00.000"),
    ]

    assert outcomes == [True, False, True, False, True]


@pytest.mark.parametrize(
    "moment, start, end",
    [
        ("2026-11-24T23:59:59", "2026-11-24T00:00:00", "2026-11-25T00:00:00"),
        ("2026-11-24T23:59:59.999", "2026-11-24T00:00:00", "2026-11-25T00:00:00"),
        ("2026-11-25T00:00:00", "2026-11-25T00:00:00", "2026-11-26T00:00:00"),
        ("2026-11-25T00:00:00.300", "2026-11-25T00:00:00", "2026-11-26T00:00:00"),
        ("2026-12-31T23:59:59", "2026-12-31T00:00:00", "2027-01-01T00:00:00"),
        ("2028-02-29T12:00:00", "2028-02-29T00:00:00", "2028-03-01T00:00:00"),
    ],
)
def test_a_daily_budget_runs_from_utc_midnight_to_utc_midnight(moment, start, end):
    assert budget_period("daily", at(moment)) == (at(start), at(end))


@pytest.mark.parametrize(
    "moment, start, end",
    [
        ("2026-01-31T23:59:59", "2026-01-01T00:00:00", "2026-02-01T00:00:00"),  # 31 days
        ("2026-02-01T00:00:00", "2026-02-01T00:00:00", "2026-03-01T00:00:00"),
        ("2026-02-28T23:59:59.999", "2026-02-01T00:00:00", "2026-03-01T00:00:00"),  # 28 days
        ("2028-02-29T23:59:59", "2028-02-01T00:00:00", "2028-03-01T00:00:00"),  # leap year: 29
        ("2026-03-01T00:00:00", "2026-03-01T00:00:00", "2026-04-01T00:00:00"),
        ("2026-04-30T23:59:59", "2026-04-01T00:00:00", "2026-05-01T00:00:00"),  # 30 days
        ("2026-12-31T23:59:59", "2026-12-01T00:00:00", "2027-01-01T00:00:00"),  # into the next year
        ("2027-01-01T00:00:00", "2027-01-01T00:00:00", "2027-02-01T00:00:00"),
    ],
)
def test_a_monthly_budget_runs_for_its_calendar_month_in_utc(moment, start, end):
    assert budget_period("monthly", at(moment)) == (at(start), at(end))


def test_a_budget_counts_a_call_at_utc_midnight_of_the_first_in_the_new_month():
    budget = BudgetRule(7, "tenant", 1, "monthly", None, 1000, "block")
    snapshot = Snapshot(budgets={("tenant", 1): (budget,)})

    def counter_at(moment: str) -> Counter:
        (counter,) = counters_for(
            snapshot, principal(rpm=None), subscription_id=None, need=NOTHING_NEEDED, now=at(moment)
        )
        return counter

    old, new = counter_at("2026-11-30T23:59:59.999"), counter_at("2026-12-01T00:00:00")

    assert old.key == f"budget:7:tokens:{int(at('2026-11-01T00:00:00'))}"
    assert new.key == f"budget:7:tokens:{int(at('2026-12-01T00:00:00'))}"
    assert (new.window_start, new.window_end) == (at("2026-12-01T00:00:00"), at("2027-01-01T00:00:00"))
