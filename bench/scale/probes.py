"""What the scale bench reads from a gateway's /metrics and from PostgreSQL's statistics."""

import re
import time

import httpx
import psycopg

from scale.builder import database_url


def metric_total(url: str, name: str, **labels: str) -> float | None:
    """The sum of a metric's samples matching `labels` in the gateway's /metrics: 0 when none match (a counter
    shows a label value only once it has counted one), None when the gateway has no such metric at all."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    total, has_metric = 0.0, False
    for line in text.splitlines():
        match = re.match(rf"{name}(?:\{{(.*)\}})? ([0-9.e+-]+)$", line)
        if match:
            has_metric = True
            if all(f'{key}="{value}"' in (match.group(1) or "") for key, value in labels.items()):
                total += float(match.group(2))
    return total if has_metric else None


def database_transactions(database: str) -> int:
    with psycopg.connect(database_url("postgres")) as conn:
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", (database,)
        ).fetchone()
    return int(row[0])


LOOKUP_RESULTS = ("hit", "found", "unknown", "negative", "throttled")


def lookup_counts(gateways) -> dict[str, float] | None:
    """tollway_key_lookups_total by result, summed over the processes; None where the gateway has no such metric."""
    counts = {result: 0.0 for result in LOOKUP_RESULTS}
    for gateway in gateways:
        for result in LOOKUP_RESULTS:
            value = metric_total(gateway.url, "tollway_key_lookups_total", result=result)
            if value is None:
                return None
            counts[result] += value
    return counts


class TransactionWindow:
    """Transactions PostgreSQL counted for one database over a window, per second."""

    def __init__(self, database: str) -> None:
        self.database = database

    def __enter__(self) -> "TransactionWindow":
        self.count, self.started = database_transactions(self.database), time.monotonic()
        return self

    def __exit__(self, *exc_info) -> None:
        time.sleep(1.5)  # PostgreSQL publishes its transaction counts about once a second
        self.per_s = (database_transactions(self.database) - self.count) / (time.monotonic() - self.started)
