"""How long a call waits before trying the same deployment again, what an upstream's Retry-After asks, and the
call's deadline. Fail-over to another deployment does not wait; only a retry of the same one does."""

import math
import random
import re
import time
from collections.abc import Callable
from datetime import UTC
from email.utils import parsedate_to_datetime

from core.values import RetryPolicy

MAX_RETRY_AFTER_S = 3600.0
_MAX_RETRY_AFTER_CHARS = 64  # an HTTP date is 29; anything longer is not a Retry-After we can read
_SECONDS = re.compile(r"[0-9]+(\.[0-9]+)?")  # ASCII digits: \d would take any script's digits


def backoff_ms(retry_number: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Full jitter: uniform over 0 to min(max_delay_ms, base_delay_ms * 2 ** (retry_number - 1)), so retries
    of many calls at once spread out instead of arriving together. `retry_number` counts from 1."""
    # Past 2**40 the cap is max_delay_ms for any allowed base: no need to build a huge integer.
    exponent = min(max(retry_number, 1) - 1, 40)
    ceiling_ms = min(policy.max_delay_ms, policy.base_delay_ms * 2**exponent)
    return rng.uniform(0, ceiling_ms)


def parse_retry_after(value: str | None, *, now_wall: float) -> float | None:
    """Retry-After as seconds from now: delta-seconds (a float is tolerated) or an HTTP date (a date already
    past is 0). None when absent, negative or unreadable; at most 3600, whatever the upstream says."""
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > _MAX_RETRY_AFTER_CHARS:
        return None
    if _SECONDS.fullmatch(value):
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": no zone stated; HTTP dates are in UTC
        when = when.replace(tzinfo=UTC)
    try:
        seconds = when.timestamp() - now_wall
    except (OverflowError, ValueError, OSError):
        return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


class Deadline:
    """A call's whole budget (RetryPolicy.deadline_ms), from when it is made."""

    def __init__(self, deadline_ms: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._ends_at = clock() + deadline_ms / 1000

    def remaining_ms(self) -> float:
        return max(0.0, (self._ends_at - self._clock()) * 1000)

    @property
    def expired(self) -> bool:
        return self.remaining_ms() <= 0
