"""Dedicated threads for the gateway's database work, one per lane: "usage" (flushes, recovery, probes) and
"control" (the change feed and key lookups), each with its own connection.

Keeping ORM calls on dedicated threads means a bounded number of connections per process, and never the shared
sync thread Django's own views queue on. Two lanes, because a usage flush stuck in a database outage must not
hold up the lookup of a key a caller is waiting for.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor

from django.db import DatabaseError, connections

_executors: dict[str, ThreadPoolExecutor] = {}


def _call(fn, args, kwargs):
    try:
        return fn(*args, **kwargs)
    except DatabaseError:
        # A dropped connection must not poison the next call.
        for connection in connections.all(initialized_only=True):
            connection.close_if_unusable_or_obsolete()
        raise


async def run_in_db(fn, *args, lane: str = "usage", **kwargs):
    executor = _executors.get(lane)
    if executor is None:
        executor = _executors[lane] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"tollway-db-{lane}")
    return await asyncio.get_running_loop().run_in_executor(executor, _call, fn, args, kwargs)


def shutdown() -> None:
    while _executors:
        _, executor = _executors.popitem()
        executor.submit(connections.close_all).result()
        executor.shutdown(wait=True)
