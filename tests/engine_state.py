"""The engine's state in the test Redis (breakers, holds, latency averages, provider quotas) outlives a gateway,
as it must in production: a restarted gateway keeps a dead deployment's breaker open. Between tests it is a
leak (the test database, and so the Redis namespace, has the same name every time), so every test gateway
starts without it."""

import redis
from django.conf import settings

from routing.control_plane import feed


def clear_shared_engine_state(redis_url: str | None = None) -> None:
    url = redis_url if redis_url is not None else settings.REDIS_URL
    if not url:
        return
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        keys = list(client.scan_iter(f"tollway:routing:{feed.deployment_id()}:*", count=1000))
        if keys:
            client.delete(*keys)
    except redis.ConnectionError:
        pass  # no Redis: no state to leak
    finally:
        client.close()
