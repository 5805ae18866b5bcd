"""What admission control counts: plain values, no I/O.

Every limit — a budget's dollars or tokens per period, a requests- or tokens-per-minute window — is a
Counter: a named total that a request reserves a worst-case amount of when it is admitted and settles to its
real amount when it ends. Dollars are counted in integer ticks of 1e-10 USD (the precision of usage records),
so Redis and the database add them exactly.
"""

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

TICKS_PER_USD = 10**10


def usd_to_ticks(amount: Decimal) -> int:
    return int((amount * TICKS_PER_USD).to_integral_value())


def ticks_to_usd(ticks: int) -> Decimal:
    return (Decimal(ticks) / TICKS_PER_USD).quantize(Decimal("1e-10"))


def budget_counter_key(budget_id: int, kind: str, period_start: float) -> str:
    return f"budget:{budget_id}:{kind}:{int(period_start)}"


@dataclass(frozen=True, slots=True)
class Counter:
    key: str  # unique name of the total, e.g. "budget:7:usd:1764547200" or "rpm:key:12:29409120"
    kind: str  # requests | tokens | usd
    limit: int | None  # None: counted, never refused (a downgrade budget's fallback, say)
    amount: int  # reserved at admission
    window_start: float  # epoch seconds
    window_end: float
    label: str  # who it limits, for error messages: "key", "team", "subscription", "tenant budget"…
    budget_id: int | None = None

    @property
    def is_rate(self) -> bool:
        return self.budget_id is None

    def ttl_s(self) -> int:
        # Kept an hour past its window, so a long stream still settles into the counter it reserved from.
        return int(self.window_end - self.window_start) + 3600


@dataclass(frozen=True, slots=True)
class Refusal:
    counter: Counter
    used: int  # spent + reserved when it refused


def minute_window(now: float) -> tuple[float, float]:
    start = float(int(now // 60) * 60)
    return start, start + 60


def budget_period(period: str, now: float) -> tuple[float, float]:
    """UTC day or UTC calendar month containing `now`, as epoch seconds."""
    moment = datetime.fromtimestamp(now, tz=UTC)
    if period == "daily":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.timestamp(), start.timestamp() + 86400
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    days = calendar.monthrange(start.year, start.month)[1]
    return start.timestamp(), start.timestamp() + days * 86400
