"""Shared by the budget and rate-limit tests: a priced catalogue, concurrent callers, the ledger's Redis."""

import asyncio
from decimal import Decimal

import openai
from django.conf import settings

from billing.ledger.stores import KEY_PREFIX
from routing.models import Deployment

# One call on the test upstream: 9 prompt + 12 completion tokens at these prices costs $0.033.
PRICE_IN, PRICE_OUT = Decimal("1000"), Decimal("2000")
COST_PER_CALL = (9 * PRICE_IN + 12 * PRICE_OUT) / 1_000_000
MAX_TOKENS = 20
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": MAX_TOKENS}


def price_the_catalogue() -> None:
    Deployment.objects.update(input_per_1m=PRICE_IN, output_per_1m=PRICE_OUT)


def clear_ledger_in_redis() -> None:
    """Counters outlive test databases in Redis; a new budget may reuse an old one's id."""
    if not settings.REDIS_URL:
        return
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(f"{KEY_PREFIX}*", count=1000):
        client.delete(key)
    client.close()


async def call_concurrently(urls: list[str], key: str, count: int, *, concurrency: int = 200) -> list[object]:
    """`count` chat calls through the openai SDK, spread over the gateway URLs; each result is the
    completion or the openai.APIStatusError it raised."""
    clients = [openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60) for url in urls]
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int):
        async with gate:
            try:
                return await clients[i % len(clients)].chat.completions.create(**CHAT)
            except openai.APIStatusError as error:
                return error

    try:
        return await asyncio.gather(*(one(i) for i in range(count)))
    finally:
        for client in clients:
            await client.close()


def wait_for_a_fresh_minute_if_near_its_end(margin_s: float = 5) -> None:
    """Rate windows are calendar minutes: keep a short sequence of calls inside one."""
    import time

    if time.time() % 60 > 60 - margin_s:
        time.sleep(60.5 - time.time() % 60)
