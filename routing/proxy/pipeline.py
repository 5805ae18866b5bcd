"""One call through the gateway, shared by /v1/chat/completions and /v1/messages: resolve the alias, check
limits, route, account. Views only parse and encode; this module never builds HTTP responses."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from billing import token_estimate, usage_writer
from billing.ledger import admission
from billing.usage import UsageEvent
from core.bounds import clip
from core.errors import (
    AliasNotAllowed,
    AllDeploymentsFailed,
    AllDeploymentsTimedOut,
    GatewayError,
    InvalidRequest,
    UnknownAlias,
    UpstreamError,
    UpstreamRejected,
)
from core.values import Principal, Target, TokenUsage
from routing.control_plane import snapshot
from routing.engine import router
from routing.engine.router import Attempts, RoutingFailed
from routing.providers.base import ChatResult, ChatStream, EmbeddingsResult
from routing.providers.http import get_client


def resolve(principal: Principal, alias: str) -> tuple[Target, ...]:
    targets = snapshot.current().aliases.get(alias)
    if principal.allowed_aliases is not None and alias not in principal.allowed_aliases:
        if targets is None:
            raise UnknownAlias(f"The model '{clip(alias)}' does not exist.")
        raise AliasNotAllowed(f"This API key may not use the model '{alias}'.")
    if targets is None:
        raise UnknownAlias(f"The model '{clip(alias)}' does not exist.")
    return targets


def error_for(failure: RoutingFailed) -> GatewayError:
    last = failure.last
    tried = ", ".join(dict.fromkeys(e.message for e in failure.attempts.errors))
    if last.status is not None and 400 <= last.status < 500 and not last.is_retryable:
        return UpstreamRejected(
            last.message,
            status=last.status,
            error_type=last.error_type,
            code=last.code,
            param=last.param,
        )
    if last.status == 429:
        return UpstreamRejected(
            f"Every deployment is rate limited: {last.message}",
            status=429,
            error_type="rate_limit_error",
            code="upstream_rate_limited",
            retry_after=last.retry_after or "1",
        )
    if failure.all_timed_out:
        return AllDeploymentsTimedOut(f"Every deployment timed out: {tried}")
    return AllDeploymentsFailed(f"Every deployment failed ({failure.attempts.count} tried): {tried}")


def finish(usage: UsageEvent, *, status: int, error_type: str = "") -> None:
    """Close the usage event and queue its record: exactly once per request."""
    if usage.alias and usage.alias not in snapshot.current().aliases:
        # A model the catalogue does not know is the client's text: records, dashboards and metrics keep one
        # "unknown model" entry (alias ""), never whatever was sent.
        usage.alias = ""
    if usage.close(status=status, error_type=error_type):
        admission.settle(usage)
        usage_writer.submit(usage)


def fail(usage: UsageEvent, exc: BaseException) -> None:
    if isinstance(exc, GatewayError):
        finish(usage, status=exc.status, error_type=exc.code or exc.type)
    else:
        finish(usage, status=500, error_type="server_error")


def _account(usage: UsageEvent, tokens: TokenUsage, target: Target) -> None:
    usage.record_tokens(tokens, target, baseline=snapshot.current().baselines.get(usage.alias))


async def _route(principal: Principal, usage: UsageEvent, body: dict[str, Any], walk) -> tuple[Any, Target]:
    """Resolve the alias, pass admission control (limits, budgets), and walk its deployments; the usage event
    learns which one answered, and when."""
    targets = resolve(principal, usage.alias)
    usage.subscription_id = principal.subscription_for(usage.alias)
    usage.alias, targets = await admission.admit(principal, usage.alias, targets, body, usage)
    attempts = Attempts()
    started = time.perf_counter()
    try:
        return await walk(get_client(), targets, attempts), attempts.target
    except RoutingFailed as failure:
        raise error_for(failure) from None
    except orjson.JSONEncodeError as exc:
        # Our encoder, not the provider, failed: a clean 400 on the usage record, never a 500 or a 502.
        # validation.check_depth keeps admitted bodies within what orjson encodes; this is the backstop.
        raise InvalidRequest(
            f"The request could not be encoded for the upstream: {exc}", code="request_not_encodable"
        ) from None
    finally:
        usage.use_target(attempts.target, attempts.count)
        usage.upstream_latency_ms = round((time.perf_counter() - started) * 1000, 3)


async def complete_chat(principal: Principal, body: dict[str, Any], usage: UsageEvent) -> ChatResult:
    result, target = await _route(principal, usage, body, lambda c, t, a: router.complete(c, t, body, a))
    # The response names the upstream model that answered, on every endpoint.
    result.body["model"] = target.model
    if result.usage.is_estimated:
        await token_estimate.ready()
        result.usage.prompt_tokens = token_estimate.count_prompt(body)
        result.usage.completion_tokens = token_estimate.count_completion(result.body)
    _account(usage, result.usage, target)
    usage.ttfb_ms = usage.elapsed_ms()
    return result


async def complete_embeddings(principal: Principal, body: dict[str, Any], usage: UsageEvent) -> EmbeddingsResult:
    result, target = await _route(principal, usage, body, lambda c, t, a: router.embeddings(c, t, body, a))
    result.body["model"] = target.model
    if result.usage.is_estimated:
        await token_estimate.ready()
        result.usage.prompt_tokens = token_estimate.count_prompt(body)
    _account(usage, result.usage, target)
    usage.ttfb_ms = usage.elapsed_ms()
    return result


async def open_chat_stream(principal: Principal, body: dict[str, Any], usage: UsageEvent) -> tuple[ChatStream, Target]:
    # Fail-over happens only here, before the first byte: once a stream is open it is never retried.
    return await _route(principal, usage, body, lambda c, t, a: router.open_stream(c, t, body, a))


class StreamRelay:
    """Relays an open upstream stream to the client, encoding each chunk as it arrives, and closes the usage
    record exactly once: at the end, on an upstream failure, or when the client goes away (the ASGI router
    then cancels the relay, which closes the upstream response)."""

    def __init__(
        self,
        *,
        stream: ChatStream,
        usage: UsageEvent,
        target: Target,
        request_body: dict[str, Any],
        encode_chunk: Callable[[dict[str, Any]], list[bytes]],
        encode_end: Callable[[TokenUsage | None], list[bytes]],
        encode_error: Callable[[UpstreamError], bytes],
    ) -> None:
        self.stream, self.usage, self.target = stream, usage, target
        self.request_body = request_body
        self.encode_chunk, self.encode_end, self.encode_error = encode_chunk, encode_end, encode_error
        self._completion_text: list[str] = []
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        outcome: tuple[int, str] = (499, "client_disconnected")
        # If we die mid-way: a rough count is enough for a record marked estimated, and costs no tokenizer.
        prompt_tokens = token_estimate.rough_prompt(self.request_body)
        usage_writer.begin_stream(self.usage, target=self.target, prompt_tokens=prompt_tokens)
        try:
            async for chunk in self.stream:
                if self.usage.ttfb_ms is None:
                    self.usage.ttfb_ms = self.usage.elapsed_ms()
                self._note_text(chunk)
                chunk["model"] = self.target.model
                for piece in self.encode_chunk(chunk):
                    yield piece
            if self.stream.usage is None:
                await token_estimate.ready()  # counted at close: read the encoding off the loop, here, not there
            for piece in self.encode_end(self.stream.usage):
                yield piece
            outcome = (200, "")
        except UpstreamError as error:
            # Headers are gone already: the client learns of the failure in-band, as OpenAI does.
            outcome = (200, "upstream_stream_error")
            yield self.encode_error(error)
        except asyncio.CancelledError:
            raise
        finally:
            await self.close(*outcome)

    def _note_text(self, chunk: dict[str, Any]) -> None:
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self._completion_text.append(delta["content"])
            for call in delta.get("tool_calls") or ():
                arguments = (call.get("function") or {}).get("arguments")
                if arguments:
                    self._completion_text.append(arguments)

    async def close(self, status: int = 499, error_type: str = "client_disconnected") -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self.stream.aclose()
        finally:
            tokens = self.stream.usage
            if tokens is None:
                tokens = TokenUsage(
                    prompt_tokens=token_estimate.count_prompt(self.request_body),
                    completion_tokens=token_estimate.count_text("".join(self._completion_text)),
                    is_estimated=True,
                )
            _account(self.usage, tokens, self.target)
            finish(self.usage, status=status, error_type=error_type)
