"""Send exactly N chat completions over C connections, wait for every answer, print how many came back 200.

wrk stops with up to one request per connection in flight, which Tollway answers and records but wrk never
counts; this client finishes every request it starts, so usage records must equal `sent` exactly.

    send_exactly.py URL KEY MODEL --count N --connections C [--stream]   prints "sent=N ok=N failed=N"
"""

import argparse
import asyncio

import aiohttp


async def send(*, url: str, key: str, model: str, count: int, connections: int, stream: bool) -> dict[str, int]:
    body = {"model": model, "messages": [{"role": "user", "content": "Say hello in one short sentence."}]}
    if stream:
        body["stream"] = True
    headers = {"Authorization": f"Bearer {key}"}
    tally = {"sent": 0, "ok": 0, "failed": 0}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(index)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections), timeout=timeout) as session:

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                tally["sent"] += 1
                try:
                    async with session.post(url, json=body, headers=headers) as response:
                        await response.read()
                        tally["ok" if response.status == 200 else "failed"] += 1
                except (aiohttp.ClientError, TimeoutError):
                    tally["failed"] += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("key")
    parser.add_argument("model")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--stream", action="store_true")
    args = parser.parse_args()
    tally = asyncio.run(
        send(
            url=args.url,
            key=args.key,
            model=args.model,
            count=args.count,
            connections=args.connections,
            stream=args.stream,
        )
    )
    print(" ".join(f"{name}={value}" for name, value in tally.items()))


if __name__ == "__main__":
    main()
