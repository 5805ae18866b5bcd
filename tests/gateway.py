"""A real gateway (config.asgi.application under uvicorn, lifespan on) on a loopback port, for SDK tests."""

import time

from django.conf import settings

from billing.models import UsageRecord

# Imported at collection: config.asgi runs django.setup() again, which re-applies LOGGING and would
# otherwise unhook pytest's log capture from the root logger in the middle of a test.
from config.asgi import application
from tests.upstreams.server import LoopbackServer


def start_gateway() -> LoopbackServer:
    return LoopbackServer(application, lifespan="on")


def wait_for_usage(
    count: int, *, timeout_s: float = 10.0, settle_s: float | None = None, **filters
) -> list[UsageRecord]:
    """Usage records are written in the background; wait until `count` have landed (and no more).

    More than `count` fails at once. Once `count` are there, the records are watched for `settle_s` (by default
    a few flush intervals of the usage writer): a duplicate written by a late flush fails here too.
    """
    if settle_s is None:
        settle_s = max(0.3, 4 * settings.TOLLWAY_USAGE_FLUSH_INTERVAL_S)

    def landed() -> list[UsageRecord]:
        records = list(UsageRecord.objects.filter(**filters).order_by("created_at", "id"))
        assert len(records) <= count, f"{len(records)} usage records, expected exactly {count}"
        return records

    deadline = time.monotonic() + timeout_s
    while len(records := landed()) < count:
        assert time.monotonic() < deadline, f"{len(records)} usage records after {timeout_s} s, expected {count}"
        time.sleep(0.05)
    settled = time.monotonic() + settle_s
    while time.monotonic() < settled:
        time.sleep(0.05)
        records = landed()
    return records
