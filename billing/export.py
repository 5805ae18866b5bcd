"""Usage records as CSV or JSON Lines, one record per line. Field names are a public interface: finance and
operators script against them, so add fields at the end and never rename one."""

import csv
from collections.abc import Iterable
from typing import TextIO

import orjson

from billing.models import UsageRecord

FIELDS = (
    "request_id",
    "created_at",
    "tenant",
    "team",
    "key_prefix",
    "alias",
    "deployment",
    "provider",
    "status",
    "error_type",
    "attempts",
    "stream",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_usd",
    "estimated",
    "latency_ms",
    "ttfb_ms",
    "upstream_latency_ms",
    "endpoint",
    "strategy",
    "baseline_cost_usd",
    "experiment",
    "experiment_arm",
    "prompt",
    "prompt_version",
)


def as_row(record: UsageRecord) -> dict:
    decision = record.decision if isinstance(record.decision, dict) else {}
    return {
        "request_id": record.request_id,
        "created_at": record.created_at.isoformat(),
        "tenant": record.tenant_name,
        "team": record.team_name,
        "key_prefix": record.key_prefix,
        "alias": record.alias,
        "deployment": record.deployment,
        "provider": record.provider,
        "status": record.status,
        "error_type": record.error_type,
        "attempts": record.attempts,
        "stream": record.stream,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "cached_tokens": record.cached_tokens,
        # Fixed-point, never an exponent: "0.0000013500", not "1.35E-6".
        "cost_usd": format(record.cost_usd, "f"),
        "estimated": record.estimated,
        "latency_ms": record.latency_ms,
        "ttfb_ms": record.ttfb_ms,
        "upstream_latency_ms": record.upstream_latency_ms,
        "endpoint": record.endpoint,
        "strategy": record.strategy,
        # What the alias's baseline deployment would have charged: baseline_cost_usd - cost_usd is "saved".
        "baseline_cost_usd": format(record.baseline_cost_usd, "f"),
        "experiment": decision.get("experiment") or "",
        "experiment_arm": decision.get("arm") or "",
        "prompt": record.prompt,  # the prompt template's slug; "" for calls that used none
        "prompt_version": record.prompt_version,
    }


def write_jsonl(records: Iterable[UsageRecord], out: TextIO) -> int:
    count = 0
    for record in records:
        # JSON Lines carry the whole routing decision beside the flat fields; CSV has no place for it.
        out.write(orjson.dumps({**as_row(record), "decision": record.decision}).decode() + "\n")
        count += 1
    return count


def write_csv(records: Iterable[UsageRecord], out: TextIO) -> int:
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for record in records:
        row = as_row(record)
        row["stream"], row["estimated"] = str(row["stream"]).lower(), str(row["estimated"]).lower()
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
        count += 1
    return count
