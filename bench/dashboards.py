"""Dashboard load times at 10 million usage records over 30 days, on PostgreSQL. Run by hand, not in the suite:

    .venv/bin/python bench/dashboards.py              # generate (if needed), aggregate, measure
    .venv/bin/python bench/dashboards.py --regenerate # drop the bench records and generate them again

Uses the database tollway_bench on 127.0.0.1 (DATABASE_URL overrides). Steps:

1. Generate RECORDS raw UsageRecords over the 30 days before today in one INSERT ... SELECT FROM generate_series
   per million: 3 tenants, 8 teams, 24 keys (a few busy, most quiet), 5 aliases over 7 deployments on 3
   providers, ~3% errors of three types, 10% cache hits, 20% streams.
2. Aggregate them with billing.aggregation.aggregate_pending(), timed.
3. Measure each dashboard page and data endpoint for the 30 days, through Django's test client as a finance
   user (one tenant) and a platform admin (all tenants): the first request of each ("cold": fresh process and
   connection, so plotly, templates and PostgreSQL plans are not warm) and the median of WARM_RUNS more.
4. Time the same reads against the raw records (what the dashboards would cost without aggregates).

The table gives each time as a ratio to the 1 s target and to the raw-record equivalent: within one run these
ratios are what to quote (the machine is shared; absolute times move between runs).
"""

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tollway_bench")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("TOLLWAY_USAGE_RETENTION_DAYS", "90")  # keep the whole month in raw records

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import Count, Q, Sum  # noqa: E402
from django.db.models.functions import TruncDay  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

RECORDS = int(os.environ.get("BENCH_RECORDS", 10_000_000))
CHUNK = 1_000_000
WARM_RUNS = int(os.environ.get("BENCH_WARM_RUNS", 7))
TARGET_S = 1.0
TENANTS = {
    "Northwind": ["Checkout", "Search", "Support"],
    "Initech": ["Billing", "Reports", "Ops"],
    "Hooli": ["Core", "Labs"],
}
# alias, deployment, provider, input and output $ per 1M tokens, baseline input/output (the alias's dearest)
ROUTES = [
    ("gpt-4o-mini", "oai-4o-mini", "openai", 0.15, 0.60, 0.15, 0.60),
    ("gpt-4o-mini", "azure-4o-mini", "azure", 0.15, 0.60, 0.15, 0.60),
    ("gpt-4o", "oai-4o", "openai", 2.50, 10.0, 2.50, 10.0),
    ("smart", "anthropic-haiku", "anthropic", 0.80, 4.00, 3.00, 15.0),
    ("smart", "anthropic-sonnet", "anthropic", 3.00, 15.0, 3.00, 15.0),
    ("cheap", "azure-4o-mini", "azure", 0.15, 0.60, 0.15, 0.60),
    ("embed", "oai-embed-small", "openai", 0.02, 0.0, 0.02, 0.0),
]


def say(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)


def seed_organisations() -> list[tuple]:
    """Tenants, teams and keys (idempotent); one row per key: (tenant id, team id, key id, names, prefix)."""
    from portal import services
    from portal.models import APIKey, Team, Tenant

    keys = []
    for tenant_name, team_names in TENANTS.items():
        tenant, _ = Tenant.objects.get_or_create(name=tenant_name, defaults={"slug": tenant_name.lower()})
        for team_name in team_names:
            team, _ = Team.objects.get_or_create(tenant=tenant, slug=team_name.lower(), defaults={"name": team_name})
            for _ in range(3 - APIKey.objects.filter(team=team).count()):
                services.issue_api_key(team=team, name="bench")
            for key in APIKey.objects.filter(team=team).order_by("pk")[:3]:
                keys.append((tenant.pk, team.pk, key.pk, tenant.name, team.name, key.prefix))
    return keys


def seed_users():
    from django.contrib.auth import get_user_model

    from portal.models import Membership, Tenant

    User = get_user_model()
    admin, _ = User.objects.get_or_create(username="bench-root", defaults={"is_superuser": True, "is_staff": True})
    finance, _ = User.objects.get_or_create(username="bench-finance")
    tenant = Tenant.objects.get(name="Northwind")
    Membership.objects.get_or_create(user=finance, tenant=tenant, team=None, defaults={"role": "finance"})
    return finance, admin


def generate(keys: list[tuple], *, start: datetime) -> None:
    from billing.models import UsageRecord

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_keys, bench_routes")
        cursor.execute(
            "CREATE TABLE bench_keys (idx int PRIMARY KEY, tenant_id int, team_id int, key_id int, "
            "tenant_name text, team_name text, prefix text)"
        )
        cursor.executemany(
            "INSERT INTO bench_keys VALUES (%s, %s, %s, %s, %s, %s, %s)", [(i, *key) for i, key in enumerate(keys)]
        )
        cursor.execute(
            "CREATE TABLE bench_routes (idx int PRIMARY KEY, alias text, deployment text, provider text, "
            "in_price numeric, out_price numeric, base_in numeric, base_out numeric)"
        )
        cursor.executemany(
            "INSERT INTO bench_routes VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [(i, *route) for i, route in enumerate(ROUTES)],
        )
    say(f"generating {RECORDS:,} usage records from {start:%Y-%m-%d} (chunks of {CHUNK:,})")
    table = UsageRecord._meta.db_table
    for low in range(1, RECORDS + 1, CHUNK):
        high = min(low + CHUNK - 1, RECORDS)
        began = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(INSERT_SQL.format(table=table), {
                "low": low, "high": high, "n": RECORDS, "start": start, "nkeys": len(keys), "nroutes": len(ROUTES)
            })  # fmt: skip
        say(f"  records {low:,}..{high:,} in {time.perf_counter() - began:.1f} s")
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")


# Random numbers reference g.i so PostgreSQL draws them per row rather than once. Keys are skewed (a few busy,
# most quiet: r^3), routes uniform; errors carry no tokens and no cost.
INSERT_SQL = """
INSERT INTO {table} (request_id, created_at, stored_at, tenant_id, team_id, api_key_id, subscription_id,
    tenant_name, team_name, key_prefix, endpoint, alias, deployment, provider, prompt, status, error_type,
    attempts, stream, prompt_tokens, completion_tokens, cached_tokens, cost_usd, baseline_cost_usd, cache_hit,
    estimated, latency_ms, ttfb_ms, upstream_latency_ms)
SELECT 'bench_' || g.i, x.ts, x.ts, k.tenant_id, k.team_id, k.key_id, NULL, k.tenant_name, k.team_name, k.prefix,
    CASE WHEN r.alias = 'embed' THEN 'embeddings' ELSE 'chat.completions' END, r.alias, r.deployment, r.provider, '',
    s.status, s.error_type, s.attempts, x.r4 < 0.2, s.ok * x.pt, s.ok * x.ct, 0,
    s.ok * (x.pt * r.in_price + x.ct * r.out_price) / 1000000,
    s.ok * (x.pt * r.base_in + x.ct * r.base_out) / 1000000,
    x.r5 < 0.1, false, x.latency, x.latency * (0.2 + 0.3 * x.r2), x.latency * 0.92
FROM generate_series(%(low)s, %(high)s) AS g(i)
CROSS JOIN LATERAL (
    SELECT %(start)s::timestamptz + (g.i::float8 / %(n)s) * interval '30 days' + (random() + 0 * g.i) * interval '1 s'
               AS ts,
           random() + 0 * g.i AS r1, random() + 0 * g.i AS r2, random() + 0 * g.i AS r3,
           random() + 0 * g.i AS r4, random() + 0 * g.i AS r5,
           200 + floor(random() * 1800 + 0 * g.i)::int AS pt, 20 + floor(random() * 600 + 0 * g.i)::int AS ct,
           80 + 2500 * power(random() + 0 * g.i, 3) AS latency
) AS x
JOIN bench_keys AS k ON k.idx = least(floor(%(nkeys)s * power(x.r1, 3))::int, %(nkeys)s - 1)
JOIN bench_routes AS r ON r.idx = (g.i * 7) %% %(nroutes)s
CROSS JOIN LATERAL (
    SELECT CASE WHEN x.r3 < 0.015 THEN 429 WHEN x.r3 < 0.02 THEN 400 WHEN x.r3 < 0.03 THEN 502 ELSE 200 END AS status,
           CASE WHEN x.r3 < 0.015 THEN 'rate_limit_exceeded' WHEN x.r3 < 0.02 THEN 'invalid_request_error'
                WHEN x.r3 < 0.03 THEN 'upstream_error' ELSE '' END AS error_type,
           CASE WHEN x.r3 < 0.03 THEN 0 ELSE 1 END AS ok,
           CASE WHEN x.r2 < 0.05 THEN 2 WHEN x.r2 < 0.06 THEN 3 ELSE 1 END AS attempts
) AS s
"""


def timed(call) -> float:
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


def measure_endpoints(client: Client, query: dict) -> dict[str, tuple[float, float]]:
    """Endpoint -> (cold s, warm median s)."""
    endpoints = {
        "finance page": "/console/dashboards/",
        "finance data": "/console/dashboards/finance/data/",
        "operations page": "/console/dashboards/operations/",
        "operations data": "/console/dashboards/operations/data/",
        "chargeback page": "/console/dashboards/chargeback/",
    }
    results = {}
    for name, url in endpoints.items():

        def get(url=url):
            response = client.get(url, query)
            assert response.status_code == 200, (url, response.status_code)

        cold = timed(get)
        warm = statistics.median(timed(get) for _ in range(WARM_RUNS))
        results[name] = (cold, warm)
    return results


def raw_equivalents(scope: Q, since: datetime, until: datetime) -> dict[str, float]:
    """The dashboards' reads, done on raw records instead of aggregates (one run each: they are slow)."""
    from billing.models import UsageRecord

    records = UsageRecord.objects.filter(scope, created_at__gte=since, created_at__lt=until)
    money = {"requests": Count("id"), "cost": Sum("cost_usd"), "baseline": Sum("baseline_cost_usd")}

    def finance():
        list(records.annotate(day=TruncDay("created_at")).values("day", "team_id").annotate(**money))
        records.aggregate(**money)
        list(records.values("team_id").annotate(**money).order_by("-cost")[:10])
        list(records.values("api_key_id").annotate(**money).order_by("-cost")[:10])
        list(records.values("alias").annotate(**money).order_by("-cost")[:10])

    def operations():
        list(
            records.annotate(day=TruncDay("created_at"))
            .values("day")
            .annotate(n=Count("id"), errors=Count("id", filter=Q(status__gte=400)), tokens=Sum("prompt_tokens"))
        )
        list(records.annotate(day=TruncDay("created_at")).values("day", "error_type").annotate(n=Count("id")))
        sql, params = records.values("deployment", "latency_ms", "ttfb_ms").query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT deployment, percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms), "  # noqa: S608
                f"percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY ttfb_ms) FROM ({sql}) r GROUP BY deployment",
                params,
            )
            cursor.fetchall()

    return {"finance": timed(finance), "operations": timed(operations)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regenerate", action="store_true", help="delete the bench records and generate them again")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("bench/dashboards.py measures PostgreSQL: set DATABASE_URL to a PostgreSQL database")

    from billing.aggregation import aggregate_pending
    from billing.models import AggregatedBucket, UsageAggregate, UsageRecord

    call_command("migrate", verbosity=0)
    keys = seed_organisations()
    finance_user, admin = seed_users()
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=30)
    existing = UsageRecord.objects.filter(request_id__startswith="bench_").count()
    if args.regenerate or existing != RECORDS:
        say(f"clearing {existing:,} old bench records and their aggregates")
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {UsageRecord._meta.db_table}, {UsageAggregate._meta.db_table}, "
                           f"{AggregatedBucket._meta.db_table}")  # fmt: skip
        generate(keys, start=start)
    else:
        say(f"reusing {existing:,} bench records")
        start = UsageRecord.objects.order_by("created_at").values_list("created_at", flat=True).first()
        start = start.replace(hour=0, minute=0, second=0, microsecond=0)

    say("aggregating with billing.aggregation.aggregate_pending()")
    aggregation_s = timed(aggregate_pending)
    hourly = UsageAggregate.objects.filter(granularity="hour").count()
    daily = UsageAggregate.objects.filter(granularity="day").count()
    say(f"aggregated in {aggregation_s:.1f} s: {hourly:,} hourly and {daily:,} daily rows")
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {UsageAggregate._meta.db_table}")

    setup_test_environment()
    since, until = start, start + timedelta(days=30)
    query = {"from": f"{since:%Y-%m-%d}", "to": f"{until - timedelta(days=1):%Y-%m-%d}"}
    rows = []
    from portal.models import Tenant

    northwind = Tenant.objects.get(name="Northwind")
    for who, user, scope in (
        ("finance (1 tenant)", finance_user, Q(tenant_id=northwind.pk)),
        ("platform admin", admin, Q()),
    ):
        connection.close()  # cold: a new connection, no cached plans
        client = Client()
        client.force_login(user)
        timings = measure_endpoints(client, query)
        raw = raw_equivalents(scope, since, until)
        for name, (cold, warm) in timings.items():
            raw_s = (
                raw["finance"] if name.startswith("finance") else raw["operations"] if "operations" in name else None
            )
            rows.append((who, name, cold, warm, raw_s))

    print()
    print(f"Dashboards over 30 days: {RECORDS:,} raw records -> {hourly:,} hourly + {daily:,} daily aggregate rows "
          f"(aggregation {aggregation_s:.0f} s). Warm = median of {WARM_RUNS}.")  # fmt: skip
    print()
    print("| user | endpoint | cold s | warm s | warm / 1 s target | raw-records equivalent s | warm / raw |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for who, name, cold, warm, raw_s in rows:
        raw_cells = f"{raw_s:.2f} | {warm / raw_s:.3f}" if raw_s else "— | —"
        print(f"| {who} | {name} | {cold:.3f} | {warm:.3f} | {warm / TARGET_S:.2f} | {raw_cells} |")
    print()
    print("raw-records equivalent: the page's and data endpoint's reads (GROUP BY day/team/key/alias, percentile_cont")
    print("per deployment) run once on UsageRecord; one number per dashboard, compared with each of its endpoints.")


if __name__ == "__main__":
    main()
