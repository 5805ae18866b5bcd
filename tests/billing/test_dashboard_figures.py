"""Every dashboard chart with 0, 1, 2 and many points: the time axis spans the range asked for (never a
millisecond around a single point), bars are as wide as their bucket, lines show a lone point, and money is
labelled by the dollars rule on hover and with enough decimals on the axis."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest

from billing.dashboards import figures
from billing.dashboards.figures import TimeAxis
from billing.dashboards.finance import CostOverTime
from billing.dashboards.operations import ErrorsByType, TrafficPoint

DAY_MS, HOUR_MS = 86_400_000, 3_600_000
SINCE = datetime(2026, 11, 2, tzinfo=UTC)
MONTH = TimeAxis(since=SINCE, until=SINCE + timedelta(days=30), bucket_seconds=86400)
TODAY = TimeAxis(since=SINCE, until=SINCE + timedelta(days=1), bucket_seconds=3600)
POINTS = [0, 1, 2, 24]


def buckets(axis: TimeAxis, n: int) -> list[datetime]:
    return [axis.since + timedelta(seconds=axis.bucket_seconds * i) for i in range(n)]


def cost_data(axis: TimeAxis, n: int, cost: str = "0.0042") -> CostOverTime:
    times = buckets(axis, n)
    return CostOverTime(
        buckets=times,
        series={"Checkout": [Decimal(cost)] * n, "Search": [Decimal(cost) / 2] * n} if n else {},
        saved=[Decimal(cost) / 3] * n,
    )


def traffic(axis: TimeAxis, n: int) -> list[TrafficPoint]:
    return [
        TrafficPoint(
            bucket_start=moment,
            seconds=axis.bucket_seconds,
            requests=100,
            errors=0,
            fallbacks=0,
            retries=0,
            cache_hits=0,
            prompt_tokens=900,
            completion_tokens=1200,
        )
        for moment in buckets(axis, n)
    ]


def errors_data(axis: TimeAxis, n: int) -> ErrorsByType:
    return ErrorsByType(buckets=buckets(axis, n), requests=[100] * n, series={"upstream_error": [3] * n} if n else {})


def latency_data(axis: TimeAxis, n: int) -> dict:
    return {"main-gpt-4o-mini": {moment: {"latency_p95_ms": 420.0, "requests": 100} for moment in buckets(axis, n)}}


def every_figure(axis: TimeAxis, n: int) -> dict[str, dict]:
    points = traffic(axis, n)
    return {
        "cost": figures.cost_over_time(cost_data(axis, n), axis=axis),
        "savings": figures.savings_over_time(cost_data(axis, n), axis=axis),
        "throughput": figures.throughput(points, axis=axis),
        "rates": figures.rates(points, axis=axis),
        "errors": figures.errors_by_type(errors_data(axis, n), axis=axis),
        "latency": figures.latency_per_deployment(
            latency_data(axis, n), measure="latency_p95_ms", label="Latency p95", axis=axis
        ),
    }


@pytest.mark.parametrize("n", POINTS)
@pytest.mark.parametrize("axis", [MONTH, TODAY], ids=["30 days daily", "one day hourly"])
def test_every_time_axis_spans_the_range_asked_for_whatever_the_number_of_points(axis, n):
    for name, figure in every_figure(axis, n).items():
        xaxis = figure["layout"]["xaxis"]
        assert xaxis["type"] == "date", name
        assert xaxis["range"] == [axis.since.isoformat(), axis.until.isoformat()], name
        assert xaxis["autorange"] is False, name
        orjson.dumps(figure)  # what the data endpoint sends


@pytest.mark.parametrize("n", POINTS)
def test_daily_charts_are_ticked_in_whole_days_labelled_by_date_not_time(n):
    for name, figure in every_figure(MONTH, n).items():
        xaxis = figure["layout"]["xaxis"]
        assert xaxis["tickformat"] == "%-d %b", name
        assert xaxis["dtick"] % DAY_MS == 0 and xaxis["dtick"] >= DAY_MS, name
    three_days = TimeAxis(since=SINCE, until=SINCE + timedelta(days=3), bucket_seconds=86400)
    assert figures.cost_over_time(cost_data(three_days, 1), axis=three_days)["layout"]["xaxis"]["dtick"] == DAY_MS


@pytest.mark.parametrize("n", POINTS)
@pytest.mark.parametrize(("axis", "bucket_ms"), [(MONTH, DAY_MS), (TODAY, HOUR_MS)], ids=["daily", "hourly"])
def test_bars_are_as_wide_as_their_bucket_and_centred_on_it(axis, bucket_ms, n):
    for name in ("cost", "savings", "errors"):
        for trace in every_figure(axis, n)[name]["data"]:
            assert trace["type"] == "bar"
            assert trace["width"] == [bucket_ms * figures.BAR_FILL] * n, name
            assert (trace["xperiod"], trace["xperiodalignment"]) == (bucket_ms, "middle"), name


@pytest.mark.parametrize("n", POINTS)
def test_a_line_of_one_point_is_drawn_as_a_marker(n):
    for name in ("throughput", "rates", "latency"):
        traces = every_figure(MONTH, n)[name]["data"]
        assert traces, name
        for trace in traces:
            assert "markers" in trace["mode"], name
            assert len(trace["x"]) == n


@pytest.mark.parametrize("n", POINTS)
def test_cost_hover_uses_the_dollars_rule_and_the_axis_has_enough_decimals(n):
    figure = figures.cost_over_time(cost_data(MONTH, n), axis=MONTH)
    if n:
        checkout, search = figure["data"]
        assert checkout["customdata"] == ["$0.0042"] * n
        assert search["customdata"] == ["$0.0021"] * n
        assert checkout["hovertemplate"] == "%{customdata}"
        # Stacked, the bars reach $0.0063: ticks every $0.001 or so need four decimals, not "$0.01, $0.01".
        assert figure["layout"]["yaxis"]["tickformat"] == "$,.4f"
    else:
        assert figure["data"] == []
        assert figure["layout"]["yaxis"]["tickformat"] == "$,.2f"

    dear = figures.cost_over_time(cost_data(MONTH, max(n, 1), cost="1234.5"), axis=MONTH)
    assert dear["data"][0]["customdata"][0] == "$1,234.50"
    assert dear["layout"]["yaxis"]["tickformat"] == "$,.2f"


@pytest.mark.parametrize("n", POINTS)
def test_savings_hover_uses_the_dollars_rule(n):
    figure = figures.savings_over_time(cost_data(MONTH, n, cost="0.000054"), axis=MONTH)
    (trace,) = figure["data"]
    assert trace["customdata"] == ["$0.000018"] * n
    assert figure["layout"]["yaxis"]["tickformat"] == ("$,.6f" if n else "$,.2f")


def test_a_long_series_name_is_cut_in_the_legend():
    data = CostOverTime(buckets=[SINCE], series={"t" * 100_000: [Decimal("1")]}, saved=[Decimal(0)])

    (trace,) = figures.cost_over_time(data, axis=MONTH)["data"]

    assert trace["name"] == "t" * (figures.MAX_NAME - 1) + "…"


def test_throughput_ticks_are_plain_numbers_not_si_prefixes():
    layout = figures.throughput(traffic(MONTH, 1), axis=MONTH)["layout"]

    assert layout["yaxis"]["tickformat"] == layout["yaxis2"]["tickformat"] == ",.3~r"
