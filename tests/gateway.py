"""A real gateway (config.asgi.application under uvicorn, lifespan on) on a loopback port, for SDK tests."""

import time

from billing.models import UsageRecord

# Imported at collection: config.asgi runs django.setup() again, which re-applies LOGGING and would
# otherwise unhook pytest's log capture from the root logger in the middle of a test.
from config.asgi import application
from tests.upstreams.server import LoopbackServer


def start_gateway() -> LoopbackServer:
    return LoopbackServer(application, lifespan="on")


def wait_for_usage(count: int, *, timeout_s: float = 10.0, **filters) -> list[UsageRecord]:
    """Usage records are written in the background; wait until `count` have landed (and no more)."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = list(UsageRecord.objects.filter(**filters).order_by("created_at", "id"))
        if len(records) >= count or time.monotonic() > deadline:
            return records
        time.sleep(0.05)
