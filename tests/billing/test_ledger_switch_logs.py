"""The ledger logs a switch of the store that enforces limits once, when it has happened: while Redis is down it
does not claim every few seconds that limits are enforced in Redis again."""

import logging
import time

import httpx
import pytest
from django.test import override_settings

from billing.ledger import admission
from portal import services
from tests.billing.ledger_helpers import CHAT
from tests.gateway import start_gateway
from tests.redis_server import IS_INSTALLED, RedisServer

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not IS_INSTALLED, reason="needs redis-server to start a Redis of the test's own"),
]


def ledger_lines(caplog, since: int = 0) -> list[str]:
    return [
        r.getMessage() for r in caplog.records[since:] if r.name == admission.log.name and r.levelno >= logging.WARNING
    ]


def test_a_redis_outage_logs_the_switch_to_the_database_once_and_the_way_back_once(
    catalogue, team, caplog, monkeypatch
):
    monkeypatch.setattr(admission, "REDIS_RETRY_AFTER_S", 0.2)  # Redis is tried again every 0.2 s, not 5 s
    key = services.issue_api_key(team=team, name="limited", rpm_limit=10_000).secret

    def call(url: str) -> httpx.Response:
        return httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {key}"})

    with RedisServer() as own_redis, override_settings(REDIS_URL=own_redis.url), start_gateway() as gateway:
        first = call(gateway.url)
        own_redis.stop()
        during = []
        outage_ends = time.monotonic() + 1.5  # about seven tries of Redis while it is down
        while time.monotonic() < outage_ends:
            during.append(call(gateway.url))
        lines_during = ledger_lines(caplog)
        own_redis.start()
        back_at = len(caplog.records)
        deadline = time.monotonic() + 10
        while not any("enforced in redis" in line.lower() for line in ledger_lines(caplog, back_at)):
            assert time.monotonic() < deadline, "the ledger never went back to Redis"
            assert call(gateway.url).status_code == 200
        after = call(gateway.url)

    assert first.status_code == after.status_code == 200
    assert len(during) > 7 and {r.status_code for r in during} == {200}
    assert len(lines_during) == 1
    assert lines_during[0].startswith("Redis unreachable (")
    assert lines_during[0].endswith("): limits and budgets enforced through the database")
    lines_after = ledger_lines(caplog, back_at)
    assert lines_after == [
        "Redis restarted empty: this process carries its rate counts into it, budgets catch up",
        "Redis answers again: limits and budgets enforced in Redis",
    ]
