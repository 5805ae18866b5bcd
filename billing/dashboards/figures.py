"""Plotly figures from the dashboard selectors. The only place money becomes float: plotly draws floats.

Each builder returns the figure as a plain dict (data + layout) ready for JSON; the page draws it with the
plotly.js that ships inside the installed plotly package (served by billing.views.plotly_js).
"""

from datetime import datetime

import plotly.graph_objects as go

from billing.dashboards.budgets import BurnDown
from billing.dashboards.finance import CostOverTime
from billing.dashboards.operations import ErrorsByType, TrafficPoint

# Same palette as the console: the primary blue first.
COLOURS = ["#1f4fd1", "#17794a", "#d97706", "#c0303c", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#5b6676"]
MAX_SERIES = len(COLOURS) - 1  # beyond that, the smallest series are summed into "other"


def _x(moments: list[datetime]) -> list[str]:
    return [moment.isoformat() for moment in moments]


def _layout(fig: go.Figure, *, y_title: str, y_format: str = "", percent: bool = False) -> dict:
    fig.update_layout(
        template="plotly_white",
        margin={"l": 56, "r": 12, "t": 12, "b": 40},
        height=320,
        legend={"orientation": "h", "y": -0.18, "x": 0},
        hovermode="x unified",
        font={"family": "-apple-system, BlinkMacSystemFont, Segoe UI, Roboto, sans-serif", "size": 12},
        colorway=COLOURS,
        yaxis={"title": {"text": y_title}, "tickformat": ".1%" if percent else y_format, "rangemode": "tozero"},
        xaxis={"type": "date"},
    )
    return fig.to_plotly_json()


def _top_series(series: dict[str, list], *, zero) -> dict[str, list]:
    """The largest MAX_SERIES series, and the rest summed as "other" so the chart stays readable."""
    if len(series) <= MAX_SERIES:
        return series
    names = list(series)
    kept = {name: series[name] for name in names[:MAX_SERIES]}
    rest = [series[name] for name in names[MAX_SERIES:]]
    kept["other"] = [sum(values, zero) for values in zip(*rest, strict=True)]
    return kept


def cost_over_time(data: CostOverTime, *, granularity: str) -> dict:
    fig = go.Figure()
    x = _x(data.buckets)
    for name, costs in _top_series(data.series, zero=0).items():
        fig.add_bar(x=x, y=[float(cost) for cost in costs], name=name, hovertemplate="$%{y:,.4f}")
    fig.update_layout(barmode="stack", bargap=0.15 if granularity == "day" else 0.05)
    return _layout(fig, y_title="Cost (USD)", y_format="$,.2f")


def savings_over_time(data: CostOverTime) -> dict:
    fig = go.Figure()
    fig.add_bar(
        x=_x(data.buckets),
        y=[float(saved) for saved in data.saved],
        name="Saved vs baseline",
        marker={"color": [COLOURS[1] if saved >= 0 else COLOURS[3] for saved in data.saved]},
        hovertemplate="$%{y:,.4f}",
    )
    return _layout(fig, y_title="Saved (USD)", y_format="$,.2f")


def burn_down(burn: BurnDown) -> dict:
    as_number = float
    money = burn.unit == "usd"
    fig = go.Figure()
    fig.add_scatter(
        x=_x(burn.times),
        y=[as_number(amount) for amount in burn.cumulative],
        name="Spent" if money else "Tokens used",
        mode="lines+markers",
        line={"color": COLOURS[0], "shape": "hv"},
    )
    fig.add_scatter(
        x=_x([burn.now, burn.period_end]),
        y=[as_number(burn.spent), as_number(burn.forecast)],
        name="Forecast (linear)",
        mode="lines",
        line={"color": COLOURS[2], "dash": "dash"},
    )
    if burn.limit:
        fig.add_scatter(
            x=_x([burn.period_start, burn.period_end]),
            y=[as_number(burn.limit)] * 2,
            name="Limit",
            mode="lines",
            line={"color": COLOURS[3], "width": 1.5},
        )
    layout = _layout(fig, y_title="USD" if money else "Tokens", y_format="$,.2f" if money else ",d")
    layout["layout"]["xaxis"]["range"] = _x([burn.period_start, burn.period_end])
    layout["layout"]["height"] = 260
    return layout


def throughput(points: list[TrafficPoint]) -> dict:
    fig = go.Figure()
    x = _x([point.bucket_start for point in points])
    fig.add_scatter(x=x, y=[round(p.requests_per_s, 4) for p in points], name="Requests/s", mode="lines")
    tokens_per_s = [round(p.tokens_per_s, 2) for p in points]
    fig.add_scatter(x=x, y=tokens_per_s, name="Tokens/s", mode="lines", yaxis="y2", line={"dash": "dot"})
    layout = _layout(fig, y_title="Requests/s")
    layout["layout"]["yaxis2"] = {
        "title": {"text": "Tokens/s"},
        "overlaying": "y",
        "side": "right",
        "rangemode": "tozero",
        "showgrid": False,
    }
    layout["layout"]["margin"]["r"] = 56
    return layout


def rates(points: list[TrafficPoint]) -> dict:
    fig = go.Figure()
    x = _x([point.bucket_start for point in points])
    for name, rate in (
        ("Error rate", "error_rate"),
        ("Fallback rate", "fallback_rate"),
        ("Retries per request", "retry_rate"),
        ("Cache hit rate", "cache_hit_rate"),
    ):
        fig.add_scatter(x=x, y=[getattr(point, rate) for point in points], name=name, mode="lines")
    return _layout(fig, y_title="Share of requests", percent=True)


def errors_by_type(data: ErrorsByType) -> dict:
    fig = go.Figure()
    x = _x(data.buckets)
    for name, errors in _top_series(data.series, zero=0).items():
        share = [count / total if total else None for count, total in zip(errors, data.requests, strict=True)]
        fig.add_bar(x=x, y=share, name=name, customdata=errors, hovertemplate="%{y:.2%} (%{customdata})")
    fig.update_layout(barmode="stack")
    return _layout(fig, y_title="Failed requests", percent=True)


def latency_per_deployment(series: dict[str, dict[datetime, dict]], *, measure: str, label: str) -> dict:
    """One line per deployment (the busiest MAX_SERIES) of one percentile, e.g. measure="latency_p95_ms"."""
    fig = go.Figure()
    busiest = sorted(series.items(), key=lambda item: -sum(row["requests"] for row in item[1].values()))
    for deployment, by_bucket in sorted(busiest[:MAX_SERIES]):
        buckets = sorted(by_bucket)
        fig.add_scatter(
            x=_x(buckets), y=[by_bucket[b][measure] for b in buckets], name=deployment, mode="lines+markers"
        )
    return _layout(fig, y_title=f"{label} (ms)")
