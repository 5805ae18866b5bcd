"""One thread per process for the gateway's database work (snapshot loads, usage flushes).

The /v1 path never waits on it; keeping all ORM calls on one dedicated thread means one connection per
process, and never the shared sync thread that Django's own views queue on.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor

from django.db import DatabaseError, connections

_executor: ThreadPoolExecutor | None = None


def _call(fn, args, kwargs):
    try:
        return fn(*args, **kwargs)
    except DatabaseError:
        # A dropped connection must not poison the next call.
        for connection in connections.all(initialized_only=True):
            connection.close_if_unusable_or_obsolete()
        raise


async def run_in_db(fn, *args, **kwargs):
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tollway-db")
    return await asyncio.get_running_loop().run_in_executor(_executor, _call, fn, args, kwargs)


def shutdown() -> None:
    global _executor
    if _executor is not None:
        executor, _executor = _executor, None
        executor.submit(connections.close_all).result()
        executor.shutdown(wait=True)
