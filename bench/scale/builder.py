"""Builds a scale database with bulk SQL: `manage.py migrate`, then every row with INSERT ... SELECT FROM
generate_series (the ORM row by row would take hours for a million keys).

The first `load_keys` keys are real keys in the portal/keys.py format, hashed with the bench's pepper as
portal/keys.py hash_key does; the bench calls them, and writes them to a file for wrk. The other keys are unique
junk with the same shape in the database. Raw SQL bypasses the change feed: gateways started afterwards do a full
build, which is what every measurement here starts with.
"""

import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from portal.keys import DISPLAY_PREFIX_LENGTH, generate_key, hash_key  # noqa: E402

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PRODUCTS = 10
TEAMS_PER_TENANT = 100
# The junk keys' public ids are 8 hex digits of their row number, so a real key must not look like one.
_HEX_PUBLIC_ID = re.compile(r"sk-tw-[0-9a-f]{8}$")


@dataclass(frozen=True)
class Shape:
    keys: int
    teams: int
    aliases: int
    load_keys: int
    load_teams: int = 0  # the teams the load keys belong to, one after another; 0: every team

    def __post_init__(self) -> None:
        if self.aliases < 2 or self.teams < 1 or not 0 < self.load_keys <= self.keys:
            raise ValueError("need >= 2 aliases (bench, bench-stream), >= 1 team and 0 < load keys <= keys")
        if not 0 <= self.load_teams <= self.teams:
            raise ValueError("load teams must be between 0 (every team) and the number of teams")


def database_url(name: str) -> str:
    return f"postgres://postgres@127.0.0.1:5432/{name}"


def make_load_keys(count: int, *, pepper: str) -> list[tuple[str, str]]:
    """(key, secret_hash) pairs: the keys wrk and the checks present."""
    pairs = []
    while len(pairs) < count:
        key = generate_key()
        if not _HEX_PUBLIC_ID.match(key[:DISPLAY_PREFIX_LENGTH]):
            pairs.append((key, hash_key(key, pepper=pepper)))
    return pairs


def recreate_database(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')


def migrate(name: str, env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=REPO,
        env={**env, "DATABASE_URL": database_url(name)},
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=600,
    )


def _catalogue(cur: psycopg.Cursor, shape: Shape, upstream_url: str) -> None:
    cur.execute(
        """INSERT INTO routing_provider (id, name, kind, base_url, api_key_encrypted, api_key_env, api_version,
                                         connect_timeout_s, timeout_s, is_enabled, updated_at)
           VALUES (1, 'canned', 'openai-compatible', %(plain)s, '', 'BENCH_SCALE_UPSTREAM_KEY', '', 5, 30, true, now()),
                  (2, 'canned-stream', 'openai-compatible', %(stream)s, '', 'BENCH_SCALE_UPSTREAM_KEY', '', 5, 30,
                   true, now())""",
        {"plain": f"{upstream_url}/v1", "stream": f"{upstream_url}/stream/v1"},
    )
    # Alias i is served by deployment i; `bench` and `bench-stream` are the two the load uses.
    cur.execute(
        """INSERT INTO routing_deployment (id, name, model, input_per_1m, output_per_1m, capabilities, is_enabled,
                                           updated_at, provider_id, region, tags, speaks_responses)
           SELECT i, CASE i WHEN 1 THEN 'bench' WHEN 2 THEN 'bench-stream' ELSE 'scale-' || lpad(i::text, 5, '0') END,
                  'gpt-4o-mini', 0.15, 0.60, '[]'::jsonb, true, now(), CASE i WHEN 2 THEN 2 ELSE 1 END, '',
                  '[]'::jsonb, false
           FROM generate_series(1, %(aliases)s::int) AS i""",
        {"aliases": shape.aliases},
    )
    cur.execute(
        """INSERT INTO routing_modelalias (id, name, description, updated_at, routing)
           SELECT id, name, '', now(), '{}'::jsonb FROM routing_deployment"""
    )
    cur.execute(
        """INSERT INTO routing_aliasdeployment (id, priority, deployment_id, alias_id)
           SELECT id, 0, id, id FROM routing_deployment"""
    )


def _tenants_and_teams(cur: psycopg.Cursor, shape: Shape) -> int:
    tenants = -(-shape.teams // TEAMS_PER_TENANT)
    # Tenant 1 and team 1 are `bench`: the team the REST API and create_api_key add keys to.
    cur.execute(
        """INSERT INTO portal_tenant (id, name, slug, created_at)
           SELECT i, CASE i WHEN 1 THEN 'bench' ELSE 'tenant-' || i END,
                  CASE i WHEN 1 THEN 'bench' ELSE 'tenant-' || i END, now()
           FROM generate_series(1, %(tenants)s::int) AS i""",
        {"tenants": tenants},
    )
    cur.execute(
        """INSERT INTO portal_team (id, name, slug, created_at, tenant_id, allowed_regions, required_tags)
           SELECT i, CASE i WHEN 1 THEN 'bench' ELSE 'team-' || i END,
                  CASE i WHEN 1 THEN 'bench' ELSE 'team-' || i END, now(), (i - 1) %% %(tenants)s + 1,
                  '[]'::jsonb, '[]'::jsonb
           FROM generate_series(1, %(teams)s::int) AS i""",
        {"tenants": tenants, "teams": shape.teams},
    )
    return tenants


def _products_and_subscriptions(cur: psycopg.Cursor, shape: Shape) -> None:
    cur.execute(
        """INSERT INTO portal_product (id, name, description, requires_approval, is_published, created_at,
                                       updated_at)
           SELECT i, 'product-' || i, '', false, true, now(), now() FROM generate_series(1, %(products)s::int) AS i""",
        {"products": PRODUCTS},
    )
    # Product 1 grants bench and bench-stream; the other aliases are spread over all products.
    cur.execute(
        """INSERT INTO portal_product_aliases (product_id, modelalias_id)
           SELECT CASE WHEN id <= 2 THEN 1 ELSE id %% %(products)s + 1 END, id FROM routing_modelalias""",
        {"products": PRODUCTS},
    )
    # Every team has two active subscriptions: product 1 (id = team id) and one other (id = teams + team id).
    cur.execute(
        """INSERT INTO portal_subscription (id, status, purpose, expected_volume, reason, created_at, updated_at,
                                            product_id, team_id, decided_at)
           SELECT t, 'active', 'scale bench', '', '', now(), now(), 1, t, now()
           FROM generate_series(1, %(teams)s::int) AS t
           UNION ALL
           SELECT %(teams)s + t, 'active', 'scale bench', '', '', now(), now(), t %% (%(products)s - 1) + 2, t, now()
           FROM generate_series(1, %(teams)s::int) AS t""",
        {"teams": shape.teams, "products": PRODUCTS},
    )


def _keys(cur: psycopg.Cursor, shape: Shape, load_keys: list[tuple[str, str]]) -> None:
    # Load keys: spread over the teams, every other one a portal key (scoped by its team's subscriptions), the
    # rest operator keys for every alias, none revoked or expiring, so every call the bench makes may succeed.
    with cur.copy(
        "COPY portal_apikey (id, name, prefix, secret_hash, allowed_aliases, is_revoked, created_at, updated_at, "
        "team_id, source, allowed_regions, required_tags) FROM STDIN"
    ) as copy:
        for number, (key, secret_hash) in enumerate(load_keys, start=1):
            source = "portal" if number % 2 == 0 else "operator"
            team = (number - 1) % (shape.load_teams or shape.teams) + 1
            row = (number, f"load-{number}", key[:DISPLAY_PREFIX_LENGTH], secret_hash, "[]", False)
            copy.write_row((*row, "now", "now", team, source, "[]", "[]"))
    # Junk keys: the same mix, plus the states real key tables hold: 5% revoked, 5% expiring next year, 1% with
    # limits, and a tenth of the portal keys scoped to one subscription.
    cur.execute(
        """INSERT INTO portal_apikey (id, name, prefix, secret_hash, allowed_aliases, expires_at, is_revoked,
                                       revoked_at, rpm_limit, tpm_limit, created_at, updated_at, team_id, source,
                                       allowed_regions, required_tags)
            SELECT i, 'key-' || i, 'sk-tw-' || lpad(to_hex(i), 8, '0'), md5(i::text) || md5(i::text || 'x'),
                   CASE WHEN i %% 7 = 0 THEN '["bench"]'::jsonb ELSE '[]'::jsonb END,
                   CASE WHEN i %% 20 = 1 THEN now() + interval '1 year' END,
                   i %% 20 = 0, CASE WHEN i %% 20 = 0 THEN now() END,
                   CASE WHEN i %% 100 = 3 THEN 600 END, CASE WHEN i %% 100 = 3 THEN 100000 END,
                   now(), now(), (i - 1) %% %(teams)s + 1, CASE WHEN i %% 2 = 0 THEN 'portal' ELSE 'operator' END,
                   '[]'::jsonb, '[]'::jsonb
            FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS i""",
        {"teams": shape.teams, "first": len(load_keys) + 1, "last": shape.keys},
    )
    cur.execute(
        """INSERT INTO portal_apikey_subscriptions (apikey_id, subscription_id)
           SELECT i, (i - 1) %% %(teams)s + 1 FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS i
           WHERE i %% 20 = 2""",
        {"teams": shape.teams, "first": len(load_keys) + 1, "last": shape.keys},
    )


def _advance_sequences(cur: psycopg.Cursor) -> None:
    """Rows were inserted with explicit ids: move every id sequence past them, or the next ORM insert collides."""
    cur.execute(
        """SELECT s.relname, t.relname, a.attname
           FROM pg_class s JOIN pg_depend d ON d.objid = s.oid
           JOIN pg_class t ON t.oid = d.refobjid JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
           WHERE s.relkind = 'S' AND t.relname LIKE ANY (ARRAY['portal_%%', 'routing_%%'])"""
    )
    for sequence, table, column in cur.fetchall():
        highest = sql.SQL("SELECT max({}) FROM {}").format(sql.Identifier(column), sql.Identifier(table))
        cur.execute(sql.SQL("SELECT setval(%s, GREATEST(({}), 1))").format(highest), (sequence,))


def build(name: str, shape: Shape, load_keys: list[tuple[str, str]], *, upstream_url: str, env: dict) -> dict:
    """Recreate database `name` with `shape`; returns the seconds each step took."""
    timings = {}
    started = time.monotonic()
    recreate_database(name)
    migrate(name, env)
    timings["migrate_s"] = time.monotonic() - started
    started = time.monotonic()
    with psycopg.connect(database_url(name)) as conn, conn.cursor() as cur:
        _catalogue(cur, shape, upstream_url)
        _tenants_and_teams(cur, shape)
        _products_and_subscriptions(cur, shape)
        _keys(cur, shape, load_keys[: shape.load_keys])
        _advance_sequences(cur)
    timings["load_s"] = time.monotonic() - started
    started = time.monotonic()
    with psycopg.connect(database_url(name), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    timings["analyze_s"] = time.monotonic() - started
    return timings


def row_counts(name: str) -> dict[str, int]:
    tables = ["portal_apikey", "portal_team", "routing_modelalias", "portal_subscription", "portal_tenant"]
    with psycopg.connect(database_url(name)) as conn:
        count = sql.SQL("SELECT count(*) FROM {}")
        return {table: conn.execute(count.format(sql.Identifier(table))).fetchone()[0] for table in tables}
