"""One call through the gateway, shared by /v1/chat/completions, /v1/embeddings and /v1/messages.

    view (routing/proxy/views.py)      parses and encodes
    -> Call (here)                     opens the usage event, resolves the alias, passes admission control
                                       (billing/ledger), asks the engine, accounts, closes the event once
    -> engine (routing/engine/router.py) chooses and tries deployments
    -> adapter (routing/providers/)    speaks the provider's wire format
    -> usage writer (billing/usage_writer.py) stores the record

This module never builds HTTP responses; the errors it raises are rendered by the views.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import orjson
from django.conf import settings

from billing import token_estimate, usage_writer
from billing.ledger import admission
from billing.pricing import cost_of
from billing.usage import UsageEvent
from core.bounds import clip
from core.errors import (
    AliasNotAllowed,
    AllDeploymentsFailed,
    AllDeploymentsTimedOut,
    DeploymentsUnavailable,
    GatewayError,
    InvalidRequest,
    UnknownAlias,
    UpstreamError,
    UpstreamRejected,
)
from core.values import DEFAULT_POLICY, Principal, Target, TokenUsage
from routing.control_plane import snapshot
from routing.engine import semantic
from routing.engine.cascade import CascadeHooks
from routing.engine.checks import CheckContext, answer_of_chunks, answer_of_completion
from routing.engine.constraints import Needs, needs_for
from routing.engine.router import Engine, Plan, RoutingFailed
from routing.providers.base import ChatResult, ChatStream, EmbeddingsResult
from routing.providers.http import get_client
from routing.providers.registry import adapter_for
from routing.ssrf import UnsafeUpstream, check_base_url

MIN_QUALITY_HEADER = "HTTP_X_TOLLWAY_MIN_QUALITY"
PROMPT_HEADER = "x-tollway-prompt"  # slug@version, on every answer to a prompt call

_engine = Engine()


def engine() -> Engine:
    return _engine


def install_engine(new: Engine) -> None:
    global _engine
    _engine = new


def resolve(principal: Principal, alias: str, *, is_granted: bool = False) -> tuple[Target, ...]:
    """The alias's deployments, if this key may use it. `is_granted`: a product bundling the prompt being called
    grants its alias to the call, whatever the key's own aliases (routing/proxy/prompts.py)."""
    targets = snapshot.current().aliases.get(alias)
    if not is_granted and principal.allowed_aliases is not None and alias not in principal.allowed_aliases:
        if targets is None:
            raise UnknownAlias(f"The model '{clip(alias)}' does not exist.")
        raise AliasNotAllowed(f"This API key may not use the model '{alias}'.")
    if targets is None:
        raise UnknownAlias(f"The model '{clip(alias)}' does not exist.")
    return targets


def min_quality_from(meta: dict) -> float | None:
    """x-tollway-min-quality: a number from 0 to 1 that raises the alias's quality floor for this call."""
    raw = meta.get(MIN_QUALITY_HEADER)
    if raw is None:
        return None
    try:
        value = float(raw[:32])
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:  # also NaN
        raise InvalidRequest("x-tollway-min-quality must be a number from 0 to 1.", param="x-tollway-min-quality")
    return value


def error_for(failure: RoutingFailed) -> GatewayError:
    last = failure.last
    decision = failure.decision
    if last is None:
        return _nothing_eligible(decision)
    tried = ", ".join(dict.fromkeys(f"{a.deployment}: {a.error or a.status}" for a in decision.attempts))
    if last.status is not None and 400 <= last.status < 500 and not last.is_retryable:
        return UpstreamRejected(
            last.message, status=last.status, error_type=last.error_type, code=last.code, param=last.param
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
    return AllDeploymentsFailed(f"Every deployment failed ({len(decision.attempts)} tried): {tried}")


def _nothing_eligible(decision) -> GatewayError:
    """No deployment could even be tried: say why, in the terms of the strictest reason."""
    reasons = {skip.reason for skip in decision.skipped}
    details = "; ".join(dict.fromkeys(f"{s.deployment}: {s.reason} ({s.detail})" for s in decision.skipped))
    if reasons <= {"context"}:
        return InvalidRequest(
            f"The prompt and requested output exceed every deployment's context window: {details}",
            code="context_length_exceeded",
            param="messages",
        )
    if reasons & {"breaker-open", "retry-after", "rpm-limit", "tpm-limit"}:
        return DeploymentsUnavailable(f"No deployment of '{decision.alias}' can take calls right now: {details}")
    return InvalidRequest(
        f"No deployment of '{decision.alias}' meets this request's needs: {details}", code="no_eligible_deployment"
    )


class NativeRoute(Protocol):
    """Another API's request, for the deployments that speak it natively (routing/proxy/responses.py)."""

    def serves(self, target: Target) -> bool: ...

    async def complete(self, client, target: Target) -> ChatResult: ...

    async def open_stream(self, client, target: Target) -> ChatStream: ...


class Call:
    """One authenticated /v1 request, from its usage event opening to its closing (exactly once).

    Views use it as `async with Call(...) as call:`; an error raised inside closes the record with the error's
    status, a normal exit closes it with 200, and a stream hands the closing over to its StreamRelay."""

    def __init__(self, *, principal: Principal, endpoint: str, request_id: str, meta: dict) -> None:
        self.principal = principal
        self.meta = meta
        self.usage = UsageEvent.begin(principal=principal, endpoint=endpoint, request_id=request_id)
        self.plan: Plan | None = None
        self.target: Target | None = None
        # A prompt reached through a product: that subscription grants the call (routing/proxy/prompts.py).
        self.granted_by: int | None = None
        self._relayed = False

    async def __aenter__(self) -> "Call":
        return self

    async def __aexit__(self, exc_type, exc, tb) -> bool:
        if exc is not None:
            if isinstance(exc, GatewayError) and self.usage.prompt_version is not None:
                exc.headers.setdefault(PROMPT_HEADER, self.usage.prompt_label())
            if isinstance(exc, GatewayError) and self.plan is not None:
                # A refused call says what was tried and why, as an answered one does.
                exc.headers.setdefault("x-tollway-route", self.plan.decision.route_header())
                exc.headers.setdefault("x-tollway-attempts", str(len(self.plan.decision.attempts)))
            fail(self.usage, exc)
        elif not self._relayed:
            finish(self.usage, status=200)
        return False  # the view renders the error

    # --- the steps ---------------------------------------------------------------------------------------------

    async def complete_chat(self, body: dict[str, Any], *, native: "NativeRoute | None" = None) -> ChatResult:
        """`native`: deployments it serves get its own request instead (/v1/responses passed through as is);
        the result's body is then in that API's format (the view asks `native.serves(call.target)`)."""

        def attempt(target: Target) -> Awaitable[ChatResult]:
            if native is not None and native.serves(target):
                return native.complete(get_client(), target)
            return adapter_for(target.kind).chat(get_client(), target, body)

        result = await self._route(body, attempt, cascade_hooks=cascade_hooks(self, body, hold=_hold_completion(body)))
        result.body["model"] = self.target.model  # the upstream model that answered, on every endpoint
        if result.usage.is_estimated:
            await token_estimate.ready()
            result.usage.prompt_tokens = token_estimate.count_prompt(body)
            result.usage.completion_tokens = token_estimate.count_completion(result.body)
        self._account(result.usage)
        self.usage.ttfb_ms = self.usage.elapsed_ms()
        return result

    async def complete_embeddings(self, body: dict[str, Any]) -> EmbeddingsResult:
        result = await self._route(body, lambda target: adapter_for(target.kind).embeddings(get_client(), target, body))
        result.body["model"] = self.target.model
        if result.usage.is_estimated:
            await token_estimate.ready()
            result.usage.prompt_tokens = token_estimate.count_prompt(body)
        self._account(result.usage)
        self.usage.ttfb_ms = self.usage.elapsed_ms()
        return result

    async def open_chat_stream(
        self, body: dict[str, Any], *, native: "NativeRoute | None" = None, **encoders
    ) -> "StreamRelay":
        def attempt(target: Target) -> Awaitable[ChatStream]:
            if native is not None and native.serves(target):
                return native.open_stream(get_client(), target)
            return adapter_for(target.kind).open_chat_stream(get_client(), target, body)

        # Fail-over happens only here, before the first byte: once a stream is open it is never retried.
        stream = await self._route(
            body,
            attempt,
            # A cascade holds each step's stream but the last until its checks ran: never two answers.
            cascade_hooks=cascade_hooks(self, body, hold=_hold_stream(body)),
        )
        self._relayed = True
        return StreamRelay(call=self, stream=stream, request_body=body, **encoders)

    def check_alias(self) -> None:
        """The key may use the alias (403/404 otherwise), and the record names its subscription."""
        resolve(self.principal, self.usage.alias, is_granted=self.granted_by is not None)
        self.usage.subscription_id = self.granted_by or self.principal.subscription_for(self.usage.alias)

    def headers(self) -> dict[str, str]:
        usage = self.usage
        headers = {"x-tollway-deployment": usage.deployment, "x-tollway-attempts": str(usage.attempts)}
        if self.plan is not None:
            headers["x-tollway-route"] = self.plan.decision.route_header()
        if usage.downgraded_from:
            headers["x-tollway-downgraded-from"] = usage.downgraded_from
        if usage.prompt_version is not None:
            headers[PROMPT_HEADER] = usage.prompt_label()
        return {**headers, **usage.limit_headers}

    # --- inside ------------------------------------------------------------------------------------------------

    async def _route(
        self, body: dict[str, Any], call: Callable[[Target], Awaitable[Any]], *, cascade_hooks=None
    ) -> Any:
        """Resolve the alias, pass admission control (limits, budgets), let the engine choose and try; the usage
        event learns which deployment answered, after how many attempts, and why."""
        usage = self.usage
        targets = resolve(self.principal, usage.alias, is_granted=self.granted_by is not None)
        usage.subscription_id = self.granted_by or self.principal.subscription_for(usage.alias)
        usage.alias, targets = await admission.admit(self.principal, usage.alias, targets, body, usage)
        current = snapshot.current()
        needs = await self._needs(body)
        self.plan = engine().decide(
            usage.alias,
            aliases=current.aliases,
            policies=current.policies,
            needs=needs,
            semantic_choice=await _semantic_choice(current.policies.get(usage.alias, DEFAULT_POLICY), needs),
        )
        started = time.perf_counter()
        tried: list[Target] = []

        def attempt(target: Target) -> Awaitable[Any]:
            tried.append(target)
            return call(target)

        try:
            result, self.target = await engine().run(self.plan, attempt, cascade_hooks=cascade_hooks)
            return result
        except RoutingFailed as failure:
            raise error_for(failure) from None
        except orjson.JSONEncodeError as exc:
            # Our encoder, not the provider, failed: a clean 400 on the usage record, never a 500 or a 502.
            # validation.check_depth keeps admitted bodies within what orjson encodes; this is the backstop.
            raise InvalidRequest(
                f"The request could not be encoded for the upstream: {exc}", code="request_not_encodable"
            ) from None
        finally:
            usage.upstream_latency_ms = round((time.perf_counter() - started) * 1000, 3)
            usage.use_decision(self.plan.decision, self.target or (tried[-1] if tried else None))
            for tokens, step in cascade_hooks.discarded if cascade_hooks is not None else ():
                usage.record_discarded_step(tokens, step)  # a cascade's steps whose answers were not used

    async def _needs(self, body: dict[str, Any]) -> Needs:
        # Counted only when some deployment has a context window or a token quota to check it against, or the
        # strategy prices it: the tokenizer costs more than the rest of the decision.
        prompt_tokens = 0
        if _counts_prompt(self.usage.alias):
            await token_estimate.ready()
            prompt_tokens = token_estimate.count_prompt(body)
        return needs_for(
            body,
            endpoint=self.usage.endpoint,
            prompt_tokens=prompt_tokens,
            principal_regions=self.principal.allowed_regions,
            principal_tags=self.principal.required_tags,
            min_quality=min_quality_from(self.meta),
        )

    def _account(self, tokens: TokenUsage) -> None:
        self.usage.record_tokens(tokens, self.target, baseline=snapshot.current().baselines.get(self.usage.alias))


async def _semantic_choice(policy, needs: Needs):
    """A semantic alias's route for this prompt, embedded in the embedding thread (not on the event loop)."""
    if policy.strategy != "semantic" or policy.semantic is None:
        return None
    return await semantic.choose_off_loop(policy.semantic, needs.routing_text)


def _counts_prompt(alias: str) -> bool:
    current = snapshot.current()
    policy = current.policies.get(alias, DEFAULT_POLICY)
    if policy.strategy == "cheapest":
        return True
    if policy.cascade is not None and policy.cascade.max_cost_usd is not None:
        return True  # the climb estimates each step's cost before taking it
    names = (alias, *policy.fallbacks)
    return any(t.context_window or t.tpm_limit for name in names for t in current.aliases.get(name, ()))


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


# --- cascades (issue 12): how a step's answer is held for its checks (routing/engine/cascade.py climbs) --------


def cascade_hooks(call: Call, body: dict[str, Any], *, hold) -> CascadeHooks | None:
    """For an alias that cascades, what the climb needs; None otherwise (the engine then ignores the strategy)."""
    policy = snapshot.current().policies.get(call.usage.alias, DEFAULT_POLICY)
    if policy.cascade is None:
        return None
    context = CheckContext(request=body, client=get_client(), why_url_refused=_verifier_refused)
    return CascadeHooks(hold=hold, context=context, cost_of=lambda tokens, target: cost_of(tokens, target.price))


async def _verifier_refused(url: str) -> str | None:
    """routing/ssrf.py's rule, at call time too: a name may resolve elsewhere since the catalogue took it. The
    lookup blocks, so it runs off the event loop."""
    try:
        await asyncio.to_thread(
            check_base_url,
            url,
            allow_loopback=settings.TOLLWAY_ALLOW_LOOPBACK_UPSTREAMS,
            allow_private=settings.TOLLWAY_ALLOW_PRIVATE_UPSTREAMS,
        )
    except UnsafeUpstream as exc:
        return str(exc)
    return None


def _hold_completion(body: dict[str, Any]):
    async def hold(result: ChatResult, target: Target):
        tokens = result.usage
        if tokens.is_estimated:
            await token_estimate.ready()
            tokens = TokenUsage(
                prompt_tokens=token_estimate.count_prompt(body),
                completion_tokens=token_estimate.count_completion(result.body),
                is_estimated=True,
            )
        return result, answer_of_completion(result.body), tokens

    return hold


def _hold_stream(body: dict[str, Any]):
    """A held step's stream, read to its end into memory, up to TOLLWAY_CASCADE_HOLD_MAX_CHUNKS chunks and
    TOLLWAY_CASCADE_HOLD_MAX_BYTES bytes of answer text. Past either the step fails "too-long-to-hold" and the
    call climbs: releasing the held part would send an unchecked answer, and once its first byte is out no
    later check could take it back (never two answers). The upstream stream is closed there, so the rest of
    an answer that will not be used is not paid for."""
    max_chunks, max_bytes = settings.TOLLWAY_CASCADE_HOLD_MAX_CHUNKS, settings.TOLLWAY_CASCADE_HOLD_MAX_BYTES

    async def hold(stream: ChatStream, target: Target):
        chunks: list[dict[str, Any]] = []
        held_bytes = 0
        broken = too_long = ""
        try:
            async for chunk in stream:
                chunks.append(chunk)
                held_bytes += _text_bytes(chunk)
                if len(chunks) > max_chunks or held_bytes > max_bytes:
                    too_long = (
                        f"held {len(chunks)} chunks, {held_bytes} bytes: cap {max_chunks} chunks, {max_bytes} bytes"
                    )
                    break
        except UpstreamError as error:
            broken = error.message or "upstream stream error"
        finally:
            await stream.aclose()
        answer = answer_of_chunks(chunks)
        answer.error, answer.too_long = broken, too_long
        tokens = stream.usage
        if tokens is None:
            await token_estimate.ready()
            tokens = TokenUsage(
                prompt_tokens=token_estimate.count_prompt(body),
                completion_tokens=token_estimate.count_text(answer.text),
                is_estimated=True,
            )
        # Relayed as it came, should this step's answer be the one: the client sees one stream, this one.
        return ChatStream(chunks=_replay(chunks), usage=stream.usage), answer, tokens

    return hold


def _text_bytes(chunk: dict[str, Any]) -> int:
    """The answer text a chunk carries (content, refusal, tool-call arguments), in UTF-8 bytes."""
    size = 0
    for choice in chunk.get("choices") or ():
        delta = (choice or {}).get("delta") or {}
        for text in (delta.get("content"), delta.get("refusal")):
            if isinstance(text, str):
                size += len(text.encode())
        for call in delta.get("tool_calls") or ():
            arguments = ((call or {}).get("function") or {}).get("arguments")
            if isinstance(arguments, str):
                size += len(arguments.encode())
    return size


async def _replay(chunks: list[dict[str, Any]]):
    for chunk in chunks:
        yield chunk


_RESPONSES_DELTAS = frozenset({"response.output_text.delta", "response.function_call_arguments.delta"})


class StreamRelay:
    """Relays an open upstream stream to the client, encoding each chunk as it arrives, and closes the usage
    record exactly once: at the end, on an upstream failure, or when the client goes away (the ASGI router
    then cancels the relay, which closes the upstream response)."""

    def __init__(
        self,
        *,
        call: Call,
        stream: ChatStream,
        request_body: dict[str, Any],
        encode_chunk: Callable[[dict[str, Any]], list[bytes]],
        encode_end: Callable[[TokenUsage | None], list[bytes]],
        encode_error: Callable[[UpstreamError], bytes],
        check_answer: Callable[[str], UpstreamError | None] | None = None,
    ) -> None:
        self.call, self.stream, self.usage, self.target = call, stream, call.usage, call.target
        self.request_body = request_body
        self.encode_chunk, self.encode_end, self.encode_error = encode_chunk, encode_end, encode_error
        # Run on the whole answer text before the end is sent: a problem is sent instead of the end, in-band
        # (a prompt's output schema: routing/proxy/prompts.py).
        self.check_answer = check_answer
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
            problem = self.check_answer("".join(self._completion_text)) if self.check_answer else None
            if problem is not None:
                outcome = (200, problem.code or problem.error_type)
                yield self.encode_error(problem)
                return
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
        if chunk.get("type") in _RESPONSES_DELTAS and isinstance(chunk.get("delta"), str):
            self._completion_text.append(chunk["delta"])  # a native Responses stream (routing/proxy/responses.py)
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
            self.call._account(tokens)
            # The breaker and latency average learn how the stream went (a client leaving is nobody's fault).
            if error_type != "client_disconnected":
                attempts = self.call.plan.decision.attempts if self.call.plan else []
                answered_through = attempts[-1].alias if attempts else self.usage.alias  # a fallback, maybe
                policy = snapshot.current().policies.get(answered_through, DEFAULT_POLICY)
                engine().report_stream_end(
                    self.target,
                    policy,
                    ok=error_type == "",
                    latency_ms=self.usage.elapsed_ms(),
                    ttfb_ms=self.usage.ttfb_ms,
                )
            finish(self.usage, status=status, error_type=error_type)
