"""Money reads the same everywhere: cents from a dollar up, three significant digits below (the `dollars`
template filter and billing/dashboards/money.py, which the views and charts use)."""

from decimal import Decimal

import pytest
from django.template import Context, Template

from billing.dashboards.money import axis_tickformat, dollars


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (Decimal("0.0042"), "$0.0042"),
        (Decimal("0.000018"), "$0.000018"),
        (Decimal("12.34"), "$12.34"),
        (Decimal("1234.56"), "$1,234.56"),
        (Decimal("1234567.891"), "$1,234,567.89"),
        (Decimal("0"), "$0.00"),
        (Decimal("0.5"), "$0.50"),
        (Decimal("0.015"), "$0.015"),
        (Decimal("0.125"), "$0.125"),  # half a cent is not rounded away
        (Decimal("0.123456"), "$0.123"),
        (Decimal("0.0040"), "$0.004"),
        (Decimal("0.0099999"), "$0.01"),
        (Decimal("-0.0042"), "-$0.0042"),
        (Decimal("-1234.567"), "-$1,234.57"),
        (Decimal("0.0000000001"), "$0.0000000001"),
        (2.7755575615628914e-17, "$0.00"),  # float noise of an SQLite sum
        (None, "—"),
    ],
)
def test_the_dollars_filter_shows_sub_cent_amounts_with_three_significant_digits(amount, shown):
    assert Template("{% load billing_format %}{{ amount|dollars }}").render(Context({"amount": amount})) == shown


def test_a_sub_cent_amount_never_reads_as_zero():
    for exponent in range(2, 11):
        amount = Decimal(7).scaleb(-exponent)
        assert dollars(amount) != "$0.00"
        assert Decimal(dollars(amount).lstrip("$")) == amount


@pytest.mark.parametrize(
    ("largest", "decimals"),
    [(0, 2), (0.0042, 4), (0.000018, 6), (0.01, 3), (0.3, 2), (12.34, 2), (1234.5, 2)],
)
def test_a_dollar_axis_has_enough_decimals_for_its_ticks_to_differ(largest, decimals):
    assert axis_tickformat(largest) == f"$,.{decimals}f"
    # Plotly's finest step for a range is about a tenth of it, a 1, 2 or 5 at the leading digit.
    if largest:
        step = largest / 10
        assert round(step, decimals) != 0
