"""Dollars as the console shows them, one rule for every page, table and chart.

From a dollar up, cents ($12.34, $1,234.56). Below a dollar, three significant digits and at least cents
($0.50, $0.125, $0.0042, $0.000018): one call to a cheap model costs a few millionths of a dollar, and "$0.00"
would say it was free. Amounts are first rounded to the 10 places the models store, so the float noise of
SQLite sums (2.8e-17) reads as $0.00, not as a digit in the 17th place.
"""

import math
from decimal import ROUND_HALF_EVEN, Decimal

STORED_PLACES = Decimal("1e-10")
CENT_PLACES = 2


def _places(amount: Decimal, significant: int) -> int:
    if amount == 0 or abs(amount) >= 1:
        return CENT_PLACES
    # adjusted() is the exponent of the leading digit: -3 for 0.0042.
    return min(max(CENT_PLACES, -amount.adjusted() + significant - 1), -STORED_PLACES.as_tuple().exponent)


def dollars(amount, *, significant: int = 3) -> str:
    """'$0.0042', '-$1,234.56'; None reads as '—'."""
    if amount is None or amount == "":
        return "—"
    amount = Decimal(str(amount)) if isinstance(amount, float) else Decimal(amount)
    amount = amount.quantize(STORED_PLACES, rounding=ROUND_HALF_EVEN)
    places = _places(amount, significant)
    shown = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    # Rounding can add a digit (0.0099 -> 0.010): drop zeros beyond cents that are not significant.
    text = f"{abs(shown):,.{places}f}"
    if places > CENT_PLACES:
        whole, _, fraction = text.partition(".")
        fraction = fraction.rstrip("0").ljust(CENT_PLACES, "0")
        text = f"{whole}.{fraction}"
    return f"-${text}" if shown < 0 else f"${text}"


def axis_tickformat(largest: float) -> str:
    """A d3 format for a dollar axis whose ticks reach `largest` (absolute): enough decimals that neighbouring
    ticks differ. Plotly picks steps of 1, 2 or 5 x 10^k with at most about ten ticks, so a step is never finer
    than a tenth of the range, whose leading digit sits at 10^floor(log10(largest / 10))."""
    if not largest or not math.isfinite(largest):
        return f"$,.{CENT_PLACES}f"
    decimals = max(CENT_PLACES, -math.floor(math.log10(abs(largest) / 10)))
    return f"$,.{min(decimals, 10)}f"
