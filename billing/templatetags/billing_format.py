"""Numbers as the dashboards show them: dollars by billing/dashboards/money.py's rule, counts with separators."""

from django import template

from billing.dashboards import money

register = template.Library()


@register.filter
def dollars(amount, significant=None) -> str:
    """{{ cost|dollars }}: $12.34, $0.125, $0.0042, $0.000018 (below a dollar, money.py's significant digits)."""
    if significant is None:
        return money.dollars(amount)
    return money.dollars(amount, significant=int(significant))


@register.filter
def count(value) -> str:
    return "—" if value in (None, "") else f"{int(value):,}"


@register.filter
def percent(value, places: int = 1) -> str:
    return "—" if value in (None, "") else f"{value * 100:.{int(places)}f}%"


@register.filter
def ms(value) -> str:
    return "—" if value in (None, "") else f"{value:,.0f} ms"
