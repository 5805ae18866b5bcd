"""Numbers as the dashboards show them: dollars via the console's own usd(), counts with separators."""

from django import template

from portal.views.rendering import usd

register = template.Library()


@register.filter
def dollars(amount, places: int = 4) -> str:
    return "—" if amount in (None, "") else usd(amount, max_places=int(places))


@register.filter
def count(value) -> str:
    return "—" if value in (None, "") else f"{int(value):,}"


@register.filter
def percent(value, places: int = 1) -> str:
    return "—" if value in (None, "") else f"{value * 100:.{int(places)}f}%"


@register.filter
def ms(value) -> str:
    return "—" if value in (None, "") else f"{value:,.0f} ms"
