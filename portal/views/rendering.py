"""Rendering a console page: the navigation context, pagination and money formatting every page shares."""

from decimal import ROUND_HALF_EVEN, Decimal

from django.core.paginator import Page, Paginator
from django.http import HttpResponse
from django.shortcuts import render

from portal.context_processors import ConsoleNav
from portal.errors import PortalError

PAGE_SIZE = 20


def render_page(request, template: str, context: dict | None = None, *, section: str = "") -> HttpResponse:
    # The same lazy object the context processor gives allauth's pages, so every page draws one nav bar.
    context = {"nav": ConsoleNav(request.user), "section": section, **(context or {})}
    return render(request, template, context)


def paginate(request, items, *, param: str = "page", per_page: int = PAGE_SIZE) -> Page:
    """One page of `items`; a missing, bad or too-large page number gives the nearest real page."""
    page = Paginator(items, per_page).get_page(request.GET.get(param))
    page.param = param
    # Keep the other query parameters (filters, another list's page) in the page links.
    query = request.GET.copy()
    query.pop(param, None)
    page.other_query = query.urlencode()
    return page


def usd(amount: Decimal | None, *, max_places: int = 6) -> str:
    """Dollars as people read them: at least cents, more only when the amount needs them ($0.000045)."""
    amount = Decimal(amount or 0).quantize(Decimal(1).scaleb(-max_places), rounding=ROUND_HALF_EVEN).normalize()
    places = max(2, -amount.as_tuple().exponent)
    return f"${amount:,.{places}f}"


def as_sentence(error: PortalError) -> str:
    """A service's message ("that organisation name is taken") as the page shows it."""
    message = error.message.strip()
    return message[:1].upper() + message[1:] + ("" if message.endswith((".", "!", "?")) else ".")
