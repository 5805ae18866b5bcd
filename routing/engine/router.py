"""Try an alias's deployments in order, failing over only when an attempt provably produced nothing billable.

This is the seam the routing engine (cost/latency/quality ordering, circuit breakers) plugs into later:
`candidates()` orders the targets, `complete()`/`open_stream()` walk them.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from core.errors import UpstreamError
from core.values import Target
from routing.providers.registry import adapter_for

T = TypeVar("T")


@dataclass(slots=True)
class Attempts:
    """What happened on the way: filled in as we go, so the usage record is right whatever is raised."""

    count: int = 0
    target: Target | None = None
    errors: list[UpstreamError] = field(default_factory=list)


class RoutingFailed(Exception):
    """No deployment produced an answer; `last` is the error to report."""

    def __init__(self, last: UpstreamError, attempts: Attempts) -> None:
        super().__init__(last.message)
        self.last = last
        self.attempts = attempts

    @property
    def all_timed_out(self) -> bool:
        return all(error.is_timeout for error in self.attempts.errors)


def candidates(targets: tuple[Target, ...]) -> tuple[Target, ...]:
    return targets


async def _walk(targets: tuple[Target, ...], attempts: Attempts, call: Callable[[Target], Awaitable[T]]) -> T:
    ordered = candidates(targets)
    for index, target in enumerate(ordered):
        attempts.count += 1
        attempts.target = target
        try:
            return await call(target)
        except UpstreamError as error:
            attempts.errors.append(error)
            if not error.is_retryable or index == len(ordered) - 1:
                raise RoutingFailed(error, attempts) from None
    raise AssertionError("an alias always has at least one deployment")


async def complete(client: httpx.AsyncClient, targets: tuple[Target, ...], body: dict[str, Any], attempts: Attempts):
    return await _walk(targets, attempts, lambda target: adapter_for(target.kind).chat(client, target, body))


async def open_stream(client: httpx.AsyncClient, targets: tuple[Target, ...], body: dict[str, Any], attempts: Attempts):
    # Fail-over happens only here, before the first byte: once a stream is open it is never retried.
    return await _walk(
        targets, attempts, lambda target: adapter_for(target.kind).open_chat_stream(client, target, body)
    )


async def embeddings(client: httpx.AsyncClient, targets: tuple[Target, ...], body: dict[str, Any], attempts: Attempts):
    return await _walk(targets, attempts, lambda target: adapter_for(target.kind).embeddings(client, target, body))
