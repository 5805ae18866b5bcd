"""Every dashboard table as columns over rows, so the page and its CSV export show the same thing.

CSV cells are raw values (dollars as fixed-point decimals, rates as fractions) for spreadsheets to compute
with; the page formats them.
"""

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from django.utils import timezone

from billing.dashboards import budgets, chargeback, finance, operations
from billing.dashboards.scope import Filters


def _money(value: Decimal | None) -> str:
    # Fixed-point at the models' 10 places on every database (SQLite's SUM gives more digits, PostgreSQL's not).
    return "" if value is None else format(Decimal(value).quantize(Decimal("1e-10")), "f")


def _plain(value) -> str:
    return "" if value is None else str(value)


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    is_money: bool = False
    is_number: bool = False

    def csv_value(self, row: dict) -> str:
        value = row.get(self.key)
        return _money(value) if self.is_money else _plain(value)


def _money_col(key: str, header: str) -> Column:
    return Column(key, header, is_money=True, is_number=True)


def _count_col(key: str, header: str) -> Column:
    return Column(key, header, is_number=True)


USAGE_COLUMNS = [
    _count_col("requests", "Requests"),
    _count_col("prompt_tokens", "Input tokens"),
    _count_col("completion_tokens", "Output tokens"),
    _money_col("cost_usd", "Cost (USD)"),
    _money_col("baseline_cost_usd", "Baseline cost (USD)"),
    _money_col("saved_usd", "Saved (USD)"),
    _money_col("cost_per_1k_requests", "Cost per 1K requests (USD)"),
]


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    columns: list[Column]
    rows: Callable[..., list[dict]]  # (filters, params) -> rows

    def csv(self, filters: Filters, params) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([column.header for column in self.columns])
        for row in self.rows(filters, params):
            writer.writerow([column.csv_value(row) for column in self.columns])
        return out.getvalue()


def _budget_rows(filters: Filters, params) -> list[dict]:
    rows = []
    for budget in budgets.budgets_in_scope(filters):
        burn = budgets.burn_down(budget)
        rows.append(
            {
                "budget": budgets.budget_label(budget),
                "tenant": budget.tenant.name,
                "period_start": burn.period_start.date().isoformat(),
                "unit": burn.unit,
                "limit": burn.limit,
                "spent": burn.spent,
                "forecast": burn.forecast,
                "runs_out_at": burn.runs_out_at.isoformat(timespec="minutes") if burn.runs_out_at else "",
            }
        )
    return rows


def _chargeback_rows(filters: Filters, params) -> list[dict]:
    month = chargeback.parse_month(params.get("month"), default=timezone.now().date())
    report = chargeback.chargeback(filters, month=month)
    total = report.total
    return [
        *[row | {"month": f"{month:%Y-%m}"} for row in report.rows],
        {
            "month": f"{month:%Y-%m}",
            "tenant_name": "",
            "team_name": "Total",
            "requests": total.requests,
            "prompt_tokens": total.prompt_tokens,
            "completion_tokens": total.completion_tokens,
            "cost_usd": total.cost_usd,
            "baseline_cost_usd": total.baseline_cost_usd,
            "saved_usd": total.saved_usd,
        },
    ]


def _deployment_rows(filters: Filters, params) -> list[dict]:
    return operations.latency_by_deployment(filters)


TABLES = {
    table.name: table
    for table in [
        Table(
            "teams",
            "Top teams",
            [Column("tenant_name", "Tenant"), Column("team_name", "Team"), *USAGE_COLUMNS],
            lambda filters, params: finance.top_teams(filters, n=None),
        ),
        Table(
            "keys",
            "Top keys",
            [
                Column("key_prefix", "Key"),
                Column("tenant_name", "Tenant"),
                Column("team_name", "Team"),
                *USAGE_COLUMNS,
            ],
            lambda filters, params: finance.top_keys(filters, n=None),
        ),
        Table(
            "models",
            "Top models",
            [Column("model", "Model alias"), *USAGE_COLUMNS],
            lambda filters, params: finance.top_aliases(filters, n=None),
        ),
        Table(
            "endpoints",
            "Usage by endpoint",
            [Column("endpoint", "Endpoint"), *USAGE_COLUMNS],
            lambda filters, params: finance.usage_by_endpoint(filters),
        ),
        Table(
            "prompts",
            "Prompts by version",
            [Column("prompt", "Prompt"), Column("prompt_version", "Version"), *USAGE_COLUMNS],
            lambda filters, params: finance.top_prompts(filters, n=None),
        ),
        Table(
            "strategies",
            "Saved vs baseline by routing policy",
            [
                Column("strategy_label", "Routing policy"),
                _count_col("requests", "Requests"),
                _money_col("cost_usd", "Cost (USD)"),
                _money_col("baseline_cost_usd", "Baseline cost (USD)"),
                _money_col("saved_usd", "Saved (USD)"),
                Column("percent_saved", "Saved (%)", is_number=True),
            ],
            lambda filters, params: finance.savings_by_strategy(filters),
        ),
        Table(
            "budgets",
            "Budgets",
            [
                Column("budget", "Budget"),
                Column("tenant", "Tenant"),
                Column("period_start", "Period start"),
                Column("unit", "Unit"),
                _money_col("limit", "Limit"),
                _money_col("spent", "Spent"),
                _money_col("forecast", "Forecast at period end"),
                Column("runs_out_at", "Runs out at (UTC)"),
            ],
            _budget_rows,
        ),
        Table(
            "chargeback",
            "Monthly chargeback",
            [
                Column("month", "Month"),
                Column("tenant_name", "Tenant"),
                Column("team_name", "Team"),
                *USAGE_COLUMNS[:-1],
            ],
            _chargeback_rows,
        ),
        Table(
            "deployments",
            "Deployments",
            [
                Column("deployment", "Deployment"),
                Column("provider", "Provider"),
                _count_col("requests", "Requests"),
                _count_col("errors", "Errors"),
                Column("error_rate", "Error rate"),
                _count_col("fallbacks", "Fallbacks"),
                _count_col("retries", "Retries"),
                Column("latency_p50_ms", "Latency p50 (ms)"),
                Column("latency_p95_ms", "Latency p95 (ms)"),
                Column("latency_p99_ms", "Latency p99 (ms)"),
                Column("ttfb_p50_ms", "TTFB p50 (ms)"),
                Column("ttfb_p95_ms", "TTFB p95 (ms)"),
            ],
            _deployment_rows,
        ),
    ]
}
