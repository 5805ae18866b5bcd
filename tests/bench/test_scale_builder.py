"""bench/scale's bulk-SQL builder writes tables behind the ORM's back, so a new NOT NULL column breaks it
silently until someone runs the bench. Build a tiny database of the same shape with it, on the current
migrations, and read it back as a gateway does: its keys are found, its catalogue loads."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from bench.scale import builder

REPO = Path(__file__).resolve().parents[2]
DATABASE = "tollway_test_scale_builder"
PEPPER = "scale-builder-test-pepper"

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the builder writes PostgreSQL only"),
    pytest.mark.timeout(240),
]


def test_the_builder_fills_the_current_schema_and_a_gateway_reads_it_back():
    shape = builder.Shape(keys=300, teams=12, aliases=5, load_keys=20, load_teams=4)
    load_keys = builder.make_load_keys(shape.load_keys, pepper=PEPPER)
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"} | {
        "TOLLWAY_KEY_PEPPER": PEPPER,
        "BENCH_SCALE_UPSTREAM_KEY": "sk-unused",
    }
    try:
        builder.build(DATABASE, shape, load_keys, upstream_url="http://127.0.0.1:9", env=env)
        counts = builder.row_counts(DATABASE)
        assert counts == {
            "portal_apikey": 300,
            "portal_team": 12,
            "routing_modelalias": 5,
            "portal_subscription": 24,
            "portal_tenant": 1,
        }
        # Read back the way a gateway process does: the catalogue, and the load keys by their hashes.
        check = (
            "from routing.control_plane import loader; import os; "
            "hashes = os.environ['CHECK_HASHES'].split(); found = loader.principals_by_hash(hashes); "
            "catalogue = loader.catalogue(); "
            "print(len(found), sorted(catalogue.aliases)[:2])"
        )
        result = subprocess.run(
            [sys.executable, "manage.py", "shell", "--no-imports", "-c", check],
            cwd=REPO,
            env=env
            | {
                "DATABASE_URL": builder.database_url(DATABASE),
                "DJANGO_SETTINGS_MODULE": "config.settings",
                "CHECK_HASHES": " ".join(secret for _, secret in load_keys[:5]),
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.split()[0] == "5", result.stdout
        assert "'bench'" in result.stdout and "'bench-stream'" in result.stdout
    finally:
        import psycopg

        with psycopg.connect(builder.ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
