"""Plotly figures from the dashboard selectors. The only place money becomes float: plotly draws floats.

Each builder returns the figure as a plain dict (data + layout) ready for JSON; the page draws it with the
plotly.js that ships inside the installed plotly package (served by billing.views.plotly_js).

Left to itself plotly fits the time axis to the points: one daily point then gets an axis a millisecond wide
(labelled "00:00:00"), bars one millisecond thick, and a line of one point draws nothing. So every time axis
spans the dashboard's whole range (`TimeAxis`), bars are as wide as their bucket, lines carry markers, and
money is labelled by billing/dashboards/money.py's rule: hover text is formatted here, in Python, and the
axis's tick format has as many decimals as its range needs.
"""

import math
from dataclasses import dataclass
from datetime import datetime

import plotly.graph_objects as go

from billing.dashboards import money
from billing.dashboards.budgets import BurnDown
from billing.dashboards.finance import CostOverTime
from billing.dashboards.operations import ErrorsByType, TrafficPoint
from billing.dashboards.scope import Filters

# Same palette as the console: the primary blue first.
COLOURS = ["#1f4fd1", "#17794a", "#d97706", "#c0303c", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#5b6676"]
MAX_SERIES = len(COLOURS) - 1  # beyond that, the smallest series are summed into "other"
BAR_FILL = 0.8  # of its bucket's width: a gap between neighbouring days or hours
MAX_DAY_TICKS = 8
RATE_FORMAT = ",.3~r"
MAX_NAME = 40  # characters of a series' name in the legend: a 100,000-character team name must not fill it


def _name(name: str) -> str:
    return name if len(name) <= MAX_NAME else name[: MAX_NAME - 1] + "…"


@dataclass(frozen=True)
class TimeAxis:
    """The range a dashboard shows, [since, until), in buckets of `bucket_seconds`."""

    since: datetime
    until: datetime
    bucket_seconds: int

    @classmethod
    def of(cls, filters: Filters) -> "TimeAxis":
        return cls(since=filters.since, until=filters.until, bucket_seconds=filters.bucket_seconds)

    @property
    def is_daily(self) -> bool:
        return self.bucket_seconds >= 86400

    @property
    def bar_width_ms(self) -> float:
        return self.bucket_seconds * 1000 * BAR_FILL

    def layout(self) -> dict:
        axis = {"type": "date", "range": _x([self.since, self.until]), "autorange": False}
        if self.is_daily:
            days = (self.until - self.since).days
            # Whole days only: left alone, plotly ticks a three-day range every 12 hours ("00:00", "12:00").
            axis |= {
                "tickformat": "%-d %b",
                "hoverformat": "%-d %b %Y",
                "tick0": self.since.isoformat(),
                "dtick": math.ceil(days / MAX_DAY_TICKS) * 86_400_000,
            }
        else:
            axis |= {"hoverformat": "%-d %b %H:%M UTC"}
        return axis

    @property
    def period(self) -> dict:
        """Trace options that draw each point (x = its bucket's start) in the middle of its bucket: the 1 Dec
        bar covers 1 Dec rather than from noon on 30 Nov, and a line's first point is not cut in half by the
        axis's edge."""
        return {"xperiod": self.bucket_seconds * 1000, "xperiodalignment": "middle"}


def _x(moments: list[datetime]) -> list[str]:
    return [moment.isoformat() for moment in moments]


def _layout(fig: go.Figure, *, axis: TimeAxis | None, y_title: str, y_format: str = "", percent: bool = False) -> dict:
    fig.update_layout(
        template="plotly_white",
        margin={"l": 64, "r": 12, "t": 12, "b": 40},
        height=320,
        legend={"orientation": "h", "y": -0.18, "x": 0},
        hovermode="x unified",
        font={"family": "-apple-system, BlinkMacSystemFont, Segoe UI, Roboto, sans-serif", "size": 12},
        colorway=COLOURS,
        yaxis={"title": {"text": y_title}, "tickformat": ".1%" if percent else y_format, "rangemode": "tozero"},
        xaxis=axis.layout() if axis else {"type": "date"},
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


def _stacked_height(series: list[list]) -> float:
    """The tallest a stack of bars reaches, above or below zero (what the y-axis must label)."""
    if not series:
        return 0.0
    ups = [sum(float(v) for v in values if v > 0) for values in zip(*series, strict=True)]
    downs = [sum(float(v) for v in values if v < 0) for values in zip(*series, strict=True)]
    return max([*ups, *(-d for d in downs), 0.0])


def cost_over_time(data: CostOverTime, *, axis: TimeAxis) -> dict:
    fig = go.Figure()
    x = _x(data.buckets)
    series = _top_series(data.series, zero=0)
    for name, costs in series.items():
        fig.add_bar(
            x=x,
            y=[float(cost) for cost in costs],
            width=[axis.bar_width_ms] * len(x),
            **axis.period,
            name=_name(name),
            customdata=[money.dollars(cost) for cost in costs],
            hovertemplate="%{customdata}",
        )
    fig.update_layout(barmode="stack")
    tickformat = money.axis_tickformat(_stacked_height(list(series.values())))
    return _layout(fig, axis=axis, y_title="Cost (USD)", y_format=tickformat)


def savings_over_time(data: CostOverTime, *, axis: TimeAxis) -> dict:
    fig = go.Figure()
    x = _x(data.buckets)
    fig.add_bar(
        x=x,
        y=[float(saved) for saved in data.saved],
        width=[axis.bar_width_ms] * len(x),
        **axis.period,
        name="Saved vs baseline",
        marker={"color": [COLOURS[1] if saved >= 0 else COLOURS[3] for saved in data.saved]},
        customdata=[money.dollars(saved) for saved in data.saved],
        hovertemplate="%{customdata}",
    )
    tickformat = money.axis_tickformat(max((abs(float(saved)) for saved in data.saved), default=0.0))
    return _layout(fig, axis=axis, y_title="Saved (USD)", y_format=tickformat)


def savings_by_strategy(rows: list[dict]) -> dict:
    """Baseline, cost and saved side by side for each routing policy (rows of finance.savings_by_strategy)."""
    fig = go.Figure()
    names = [_name(row["strategy_label"]) for row in rows]
    for title, key, colour in (
        ("Baseline", "baseline_cost_usd", COLOURS[8]),
        ("Cost", "cost_usd", COLOURS[0]),
        ("Saved", "saved_usd", COLOURS[1]),
    ):
        amounts = [row[key] for row in rows]
        colours = [COLOURS[3] if key == "saved_usd" and amount < 0 else colour for amount in amounts]
        fig.add_bar(
            x=names,
            y=[float(amount) for amount in amounts],
            name=title,
            marker={"color": colours},
            customdata=[money.dollars(amount) for amount in amounts],
            hovertemplate="%{customdata}",
        )
    largest = max((abs(float(row[key])) for row in rows for key in ("baseline_cost_usd", "cost_usd", "saved_usd")),
                  default=0.0)  # fmt: skip
    layout = _layout(fig, axis=None, y_title="USD", y_format=money.axis_tickformat(largest))
    layout["layout"]["xaxis"] = {"type": "category", "title": {"text": "Routing policy"}}
    layout["layout"]["barmode"] = "group"
    layout["layout"]["hovermode"] = "x unified"
    return layout


def burn_down(burn: BurnDown) -> dict:
    as_number = float
    is_money = burn.unit == "usd"

    def shown(amounts) -> dict:
        if not is_money:
            return {}
        return {"customdata": [money.dollars(amount) for amount in amounts], "hovertemplate": "%{customdata}"}

    fig = go.Figure()
    fig.add_scatter(
        x=_x(burn.times),
        y=[as_number(amount) for amount in burn.cumulative],
        name="Spent" if is_money else "Tokens used",
        mode="lines+markers",
        line={"color": COLOURS[0], "shape": "hv"},
        **shown(burn.cumulative),
    )
    fig.add_scatter(
        x=_x([burn.now, burn.period_end]),
        y=[as_number(burn.spent), as_number(burn.forecast)],
        name="Forecast (linear)",
        mode="lines",
        line={"color": COLOURS[2], "dash": "dash"},
        **shown([burn.spent, burn.forecast]),
    )
    if burn.limit:
        fig.add_scatter(
            x=_x([burn.period_start, burn.period_end]),
            y=[as_number(burn.limit)] * 2,
            name="Limit",
            mode="lines",
            line={"color": COLOURS[3], "width": 1.5},
            **shown([burn.limit] * 2),
        )
    largest = max([float(burn.limit or 0), float(burn.forecast), *(float(v) for v in burn.cumulative)])
    layout = _layout(
        fig,
        axis=None,
        y_title="USD" if is_money else "Tokens",
        y_format=money.axis_tickformat(largest) if is_money else ",d",
    )
    layout["layout"]["xaxis"]["range"] = _x([burn.period_start, burn.period_end])
    layout["layout"]["height"] = 260
    return layout


def throughput(points: list[TrafficPoint], *, axis: TimeAxis) -> dict:
    fig = go.Figure()
    x = _x([point.bucket_start for point in points])
    requests_per_s = [round(p.requests_per_s, 4) for p in points]
    fig.add_scatter(x=x, y=requests_per_s, name="Requests/s", mode="lines+markers", **axis.period)
    tokens_per_s = [round(p.tokens_per_s, 2) for p in points]
    fig.add_scatter(
        x=x, y=tokens_per_s, name="Tokens/s", mode="lines+markers", yaxis="y2", line={"dash": "dot"}, **axis.period
    )
    # Three significant digits, not plotly's SI prefixes: a quiet day is "0.0005" requests/s, not "500µ".
    layout = _layout(fig, axis=axis, y_title="Requests/s", y_format=RATE_FORMAT)
    layout["layout"]["yaxis2"] = {
        "title": {"text": "Tokens/s"},
        "tickformat": RATE_FORMAT,
        "overlaying": "y",
        "side": "right",
        "rangemode": "tozero",
        "showgrid": False,
    }
    layout["layout"]["margin"]["r"] = 56
    return layout


def rates(points: list[TrafficPoint], *, axis: TimeAxis) -> dict:
    fig = go.Figure()
    x = _x([point.bucket_start for point in points])
    for name, rate in (
        ("Error rate", "error_rate"),
        ("Fallback rate", "fallback_rate"),
        ("Retries per request", "retry_rate"),
        ("Cache hit rate", "cache_hit_rate"),
    ):
        fig.add_scatter(
            x=x, y=[getattr(point, rate) for point in points], name=name, mode="lines+markers", **axis.period
        )
    return _layout(fig, axis=axis, y_title="Share of requests", percent=True)


def errors_by_type(data: ErrorsByType, *, axis: TimeAxis) -> dict:
    fig = go.Figure()
    x = _x(data.buckets)
    for name, errors in _top_series(data.series, zero=0).items():
        share = [count / total if total else None for count, total in zip(errors, data.requests, strict=True)]
        fig.add_bar(
            x=x,
            y=share,
            width=[axis.bar_width_ms] * len(x),
            **axis.period,
            name=_name(name),
            customdata=errors,
            hovertemplate="%{y:.2%} (%{customdata})",
        )
    fig.update_layout(barmode="stack")
    return _layout(fig, axis=axis, y_title="Failed requests", percent=True)


def latency_per_deployment(
    series: dict[str, dict[datetime, dict]], *, measure: str, label: str, axis: TimeAxis
) -> dict:
    """One line per deployment (the busiest MAX_SERIES) of one percentile, e.g. measure="latency_p95_ms"."""
    fig = go.Figure()
    busiest = sorted(series.items(), key=lambda item: -sum(row["requests"] for row in item[1].values()))
    for deployment, by_bucket in sorted(busiest[:MAX_SERIES]):
        buckets = sorted(by_bucket)
        fig.add_scatter(
            x=_x(buckets),
            y=[by_bucket[b][measure] for b in buckets],
            name=_name(deployment),
            mode="lines+markers",
            **axis.period,
        )
    return _layout(fig, axis=axis, y_title=f"{label} (ms)")
