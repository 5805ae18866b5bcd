"""Retry timing alone: the backoff's bounds and spread (seeded), Retry-After as upstreams send it, the deadline
on a fake clock."""

import random
import time
from email.utils import formatdate

from core.values import RetryPolicy
from routing.engine.retry import Deadline, backoff_ms, parse_retry_after

NOW_WALL = 1_750_000_000.0


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def http_date(epoch: float) -> str:
    return formatdate(epoch, usegmt=True)


# --- backoff ----------------------------------------------------------------------------------------------


def test_each_backoff_lies_between_zero_and_its_exponential_ceiling():
    policy = RetryPolicy(base_delay_ms=100, max_delay_ms=2000)
    rng = random.Random(7)

    for retry_number, ceiling_ms in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1600), (6, 2000), (12, 2000)]:
        delays = [backoff_ms(retry_number, policy, rng) for _ in range(2000)]
        assert 0 <= min(delays) and max(delays) <= ceiling_ms
        assert max(delays) > 0.95 * ceiling_ms  # the whole range is used: full jitter, not a fixed delay


def test_backoffs_are_spread_evenly_over_their_range():
    policy = RetryPolicy(base_delay_ms=100, max_delay_ms=2000)
    rng = random.Random(11)

    delays = [backoff_ms(3, policy, rng) for _ in range(20_000)]

    assert abs(sum(delays) / len(delays) - 200) < 5  # uniform over 0-400 ms has a mean of 200
    quarters = [sum(1 for d in delays if q * 100 <= d < (q + 1) * 100) for q in range(4)]
    assert all(4700 < count < 5300 for count in quarters)


def test_the_same_seed_gives_the_same_backoffs():
    policy = RetryPolicy()

    first = [backoff_ms(n, policy, random.Random(3)) for n in range(1, 6)]
    again = [backoff_ms(n, policy, random.Random(3)) for n in range(1, 6)]

    assert first == again


def test_a_very_late_retry_waits_at_most_max_delay():
    policy = RetryPolicy(base_delay_ms=60_000, max_delay_ms=600_000)

    delays = [backoff_ms(10**9, policy, random.Random(n)) for n in range(200)]

    assert max(delays) <= 600_000 and max(delays) > 500_000


def test_a_retry_number_below_one_is_taken_as_the_first():
    policy = RetryPolicy(base_delay_ms=100, max_delay_ms=2000)
    rng = random.Random(5)

    assert max(backoff_ms(0, policy, rng) for _ in range(500)) <= 100
    assert max(backoff_ms(-3, policy, rng) for _ in range(500)) <= 100


def test_no_base_delay_means_no_wait():
    assert backoff_ms(4, RetryPolicy(base_delay_ms=0, max_delay_ms=0), random.Random(1)) == 0


# --- Retry-After ------------------------------------------------------------------------------------------


def test_retry_after_in_seconds_is_read_as_seconds():
    assert parse_retry_after("120", now_wall=NOW_WALL) == 120
    assert parse_retry_after(" 7 ", now_wall=NOW_WALL) == 7
    assert parse_retry_after("1.5", now_wall=NOW_WALL) == 1.5
    assert parse_retry_after("0", now_wall=NOW_WALL) == 0


def test_retry_after_as_an_http_date_is_the_time_until_then():
    assert parse_retry_after(http_date(NOW_WALL + 90), now_wall=NOW_WALL) == 90
    assert parse_retry_after("Sun, 15 Jun 2025 15:07:10 GMT", now_wall=NOW_WALL - 30) == 60


def test_an_http_date_without_a_zone_is_taken_as_utc(monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")  # not UTC, whatever this machine's zone is
    time.tzset()
    try:
        assert parse_retry_after("Sun, 15 Jun 2025 15:06:40 -0000", now_wall=NOW_WALL) == 0
        assert parse_retry_after("Sun, 15 Jun 2025 15:07:40 -0000", now_wall=NOW_WALL) == 60
    finally:
        monkeypatch.undo()
        time.tzset()


def test_an_http_date_already_past_means_now():
    assert parse_retry_after(http_date(NOW_WALL - 3600), now_wall=NOW_WALL) == 0


def test_a_huge_retry_after_is_capped_at_an_hour():
    assert parse_retry_after("99999999999999999999999", now_wall=NOW_WALL) == 3600
    assert parse_retry_after("3601", now_wall=NOW_WALL) == 3600
    assert parse_retry_after(http_date(NOW_WALL + 10 * 86_400), now_wall=NOW_WALL) == 3600


def test_missing_negative_or_garbled_retry_after_is_none():
    for value in [None, "", "   ", "-5", "-0.5", "soon", "1e3", "nan", "inf", "12 s", "0x10", "1_000", "٣"]:
        assert parse_retry_after(value, now_wall=NOW_WALL) is None, value
    assert parse_retry_after("Sun, 15 Jun 99999 15:07:10 GMT", now_wall=NOW_WALL) is None
    assert parse_retry_after("1" * 65, now_wall=NOW_WALL) is None


# --- the deadline -----------------------------------------------------------------------------------------


def test_a_deadline_counts_down_on_its_clock_and_expires_at_its_end():
    clock = FakeClock(50.0)
    deadline = Deadline(2500, clock=clock)

    assert deadline.remaining_ms() == 2500
    assert not deadline.expired
    clock.now = 52.0
    assert abs(deadline.remaining_ms() - 500) < 1e-6
    assert not deadline.expired
    clock.now = 52.5
    assert deadline.remaining_ms() == 0
    assert deadline.expired
    clock.now = 60.0
    assert deadline.remaining_ms() == 0
    assert deadline.expired
