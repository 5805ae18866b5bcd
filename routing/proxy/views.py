"""The /v1 views: async DRF views, reached straight from the ASGI router in config/asgi.py.

They parse, call routing/proxy/pipeline.py and encode. Errors are raised as GatewayError subclasses and
rendered by GatewayView.handle_exception: OpenAI-style JSON (Anthropic-style on /v1/messages).
"""

import logging

import orjson
from adrf.views import APIView
from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from rest_framework import exceptions
from rest_framework.parsers import BaseParser

from core.bounds import clip
from core.errors import GatewayError, InvalidApiKey, InvalidRequest, MethodNotAllowed
from routing.control_plane import snapshot
from routing.proxy import (
    anthropic_messages,
    auth,
    feedback,
    pipeline,
    prompts,
    responses,
    responses_api,
    sse,
    validation,
)
from routing.proxy.anthropic_stream import AnthropicStreamEncoder
from routing.proxy.auth import ApiKeyAuthentication
from routing.proxy.responses_stream import ResponsesStreamEncoder

log = logging.getLogger(__name__)
JSON = "application/json"


class OrjsonParser(BaseParser):
    # JSON is the only format on /v1, whatever Content-Type a hand-written curl call sends.
    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            if "UTF-8" in exc.args[0]:
                # orjson says "surrogates not allowed" of any byte that is not UTF-8 (a compressed body, say).
                raise InvalidRequest(
                    "The request body is not valid UTF-8; send JSON, compressed only with a Content-Encoding "
                    "of gzip or deflate."
                ) from None
            raise InvalidRequest(f"The request body is not valid JSON: {exc.args[0]}") from None
        limit = settings.TOLLWAY_MAX_JSON_DEPTH
        # Fewer brackets than the limit cannot nest deeper than it (~1 ms for 5 MB); the check itself costs
        # about a third of the parse, so most bodies, prose above all, skip it.
        if raw.count(b"[") + raw.count(b"{") > limit:
            validation.check_depth(body, limit)
        return body


def json_response(payload, *, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(orjson.dumps(payload), status=status, content_type=JSON, headers=headers)


def is_anthropic_path(path: str) -> bool:
    return path == "/v1/messages" or path.startswith("/v1/messages/")


def error_response(path: str, exc: GatewayError) -> HttpResponse:
    """An error raised before any view (unknown route, body encoding): in the style of the path's API."""
    if is_anthropic_path(path):
        body = anthropic_messages.anthropic_error_body(
            anthropic_messages.error_type_for_status(exc.status), exc.message
        )
    else:
        body = exc.to_body()
    return json_response(body, status=exc.status, headers=exc.headers)


class GatewayView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes: list = []
    throttle_classes: list = []
    parser_classes = [OrjsonParser]
    endpoint = ""

    async def async_dispatch(self, request, *args, **kwargs):
        # adrf runs `initial()` (auth, negotiation) through sync_to_async: a thread hop per request.
        # Everything in ours is in-memory, so it runs inline on the event loop.
        self.args, self.kwargs = args, kwargs
        request = self.initialize_request(request, *args, **kwargs)
        self.request = request
        self.headers = self.default_response_headers
        try:
            await auth.authenticate(request._request.META)  # may look the key up off the loop
            self.initial(request, *args, **kwargs)
            handler = getattr(self, request.method.lower(), None)
            if handler is None:
                raise MethodNotAllowed(f"{clip(request.method, 20)} is not allowed on {clip(request.path)}.")
            response = await handler(request, *args, **kwargs)
        except Exception as exc:
            response = self.handle_exception(exc)
        self.response = self.finalize_response(request, response, *args, **kwargs)
        return self.response

    def perform_content_negotiation(self, request, force=False):
        return (None, JSON)

    def handle_exception(self, exc):
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            exc = InvalidApiKey(str(exc.detail))
        if isinstance(exc, exceptions.ParseError):
            exc = InvalidRequest(str(exc.detail))
        if not isinstance(exc, GatewayError):
            log.exception("unhandled error on %s", clip(self.request.path) if hasattr(self, "request") else "/v1")
            exc = GatewayError("The gateway hit an internal error. Quote the x-request-id when reporting it.")
        return json_response(self.error_body(exc), status=exc.status, headers=exc.headers)

    def error_body(self, exc: GatewayError) -> dict:
        return exc.to_body()

    def begin_call(self, request) -> pipeline.Call:
        meta = request._request.META
        return pipeline.Call(
            principal=request.auth, endpoint=self.endpoint, request_id=meta["tollway.request_id"], meta=meta
        )

    def read_body(self, request, call: pipeline.Call) -> dict:
        if "tollway.body_error" in request._request.META:
            raise request._request.META["tollway.body_error"]  # too large, or its Content-Encoding (config/asgi.py)
        body = request.data  # OrjsonParser checks its depth
        call.usage.alias = validation.check_model(body)
        if isinstance(body.get("stream"), bool):
            call.usage.stream = body["stream"]
        return body


class ChatCompletionsView(GatewayView):
    endpoint = "chat.completions"

    async def post(self, request):
        async with self.begin_call(request) as call:
            body = self.read_body(request, call)
            validation.check_chat(body)
            if not call.usage.stream:
                result = await call.complete_chat(body)
                return HttpResponse(orjson.dumps(result.body), content_type=JSON, headers=call.headers())
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            relay = await call.open_chat_stream(
                body,
                encode_chunk=sse.openai_chunk_encoder(include_usage=include_usage),
                encode_end=sse.openai_end,
                encode_error=sse.openai_error_event,
            )
            return stream_response(relay, call)


class PromptCompletionsView(GatewayView):
    """`POST /v1/prompts/{slug}[@{version}]/completions`: a published prompt template rendered with the caller's
    variables (routing/proxy/prompts.py), then the same pipeline as /v1/chat/completions."""

    endpoint = "prompts.completions"

    async def post(self, request, reference: str):
        async with self.begin_call(request) as call:
            if "tollway.body_error" in request._request.META:
                raise request._request.META["tollway.body_error"]
            prompt_call = await prompts.prepare(call, reference, request.data)
            if not prompt_call.is_stream:
                result = await call.complete_chat(prompt_call.chat_body)
                answer = prompt_call.parsed(result.body)
                return HttpResponse(orjson.dumps(answer), content_type=JSON, headers=call.headers())
            relay = await call.open_chat_stream(
                prompt_call.chat_body,
                encode_chunk=sse.openai_chunk_encoder(include_usage=prompt_call.include_usage),
                encode_end=sse.openai_end,
                encode_error=sse.openai_error_event,
                check_answer=prompt_call.check_stream,
            )
            return stream_response(relay, call)


def stream_response(relay: pipeline.StreamRelay, call: pipeline.Call) -> StreamingHttpResponse:
    response = StreamingHttpResponse(streaming_content=(), content_type="text/event-stream", headers=call.headers())
    response["cache-control"] = "no-cache"
    # The ASGI router pumps the relay itself and cancels it when the client disconnects.
    response.tollway_relay = relay
    return response


class EmbeddingsView(GatewayView):
    endpoint = "embeddings"

    async def post(self, request):
        async with self.begin_call(request) as call:
            body = self.read_body(request, call)
            call.usage.stream = False
            validation.check_embeddings(body)
            result = await call.complete_embeddings(body)
            return HttpResponse(orjson.dumps(result.body), content_type=JSON, headers=call.headers())


def _model_entry(alias: str) -> dict:
    return {"id": alias, "object": "model", "created": 0, "owned_by": "tollway"}


class ModelsView(GatewayView):
    """Only the aliases this key may use. Listing models is not a billable call, so it leaves no usage record
    of tokens but still one record of the request."""

    endpoint = "models"

    async def get(self, request, model_id: str | None = None):
        async with self.begin_call(request) as call:
            principal = request.auth
            aliases = sorted(
                alias
                for alias in snapshot.current().aliases
                if principal.allowed_aliases is None or alias in principal.allowed_aliases
            )
            if model_id is None:
                return json_response({"object": "list", "data": [_model_entry(a) for a in aliases]})
            call.usage.alias = model_id
            if model_id not in aliases:
                pipeline.resolve(principal, model_id)  # raises the right 403/404
            return json_response(_model_entry(model_id))


class FeedbackView(GatewayView):
    """`POST /v1/feedback` (routing/proxy/feedback.py). Like listing models, it is not billable and still leaves
    the request's one usage record (endpoint "feedback", no alias, cost 0)."""

    endpoint = "feedback"

    async def post(self, request):
        async with self.begin_call(request) as call:
            if "tollway.body_error" in request._request.META:
                raise request._request.META["tollway.body_error"]
            request_id, score = feedback.parse(request.data)
            return json_response(await feedback.rate(call.principal, request_id=request_id, score=score))


class MessagesView(GatewayView):
    """The Anthropic Messages API inbound, on top of the canonical chat pipeline: any provider can answer."""

    endpoint = "messages"

    def error_body(self, exc: GatewayError) -> dict:
        return anthropic_messages.anthropic_error_body(
            anthropic_messages.error_type_for_status(exc.status), exc.message
        )

    async def post(self, request):
        async with self.begin_call(request) as call:
            body = self.read_body(request, call)
            try:
                chat_body = anthropic_messages.to_openai_request(body)
            except anthropic_messages.InvalidMessagesRequest as exc:
                raise InvalidRequest(exc.message, param=exc.param) from None
            if not call.usage.stream:
                result = await call.complete_chat(chat_body)
                model = result.body["model"]  # the upstream model that answered (Call.complete_chat)
                message = anthropic_messages.to_anthropic_message(result.body, model=model, usage=result.usage)
                return HttpResponse(orjson.dumps(message), content_type=JSON, headers=call.headers())
            encoder = AnthropicStreamEncoder(model="", message_id=anthropic_messages.new_message_id())
            relay = await call.open_chat_stream(
                chat_body,
                encode_chunk=encoder.feed,
                encode_end=encoder.finish,
                encode_error=lambda error: b"".join(
                    encoder.error(anthropic_messages.error_type_for_status(error.status or 500), error.message)
                ),
            )
            encoder.model = call.target.model  # known once a deployment answered
            return stream_response(relay, call)


class CountTokensView(MessagesView):
    """`POST /v1/messages/count_tokens` (the anthropic SDK's `messages.count_tokens`): the prompt's tokens by the
    gateway's own count (token_estimate), for an alias this key may use. Nothing is routed, so the call is
    recorded with zero cost and no deployment."""

    endpoint = "messages.count_tokens"

    async def post(self, request):
        async with self.begin_call(request) as call:
            body = self.read_body(request, call)
            call.usage.stream = False
            try:
                # count_tokens takes no max_tokens; the translation wants one.
                chat_body = anthropic_messages.to_openai_request({**body, "max_tokens": 1, "stream": False})
            except anthropic_messages.InvalidMessagesRequest as exc:
                raise InvalidRequest(exc.message, param=exc.param) from None
            call.check_alias()  # the key's alias scope: 403/404 as for a message
            input_tokens = await anthropic_messages.count_input_tokens(chat_body)
            return HttpResponse(orjson.dumps({"input_tokens": input_tokens}), content_type=JSON)


class ResponsesView(GatewayView):
    """`POST /v1/responses`: the OpenAI Responses API, translated to the chat pipeline (any provider answers),
    its answer kept for the team unless `store` is false (routing/proxy/responses.py)."""

    endpoint = "responses"

    async def post(self, request):
        async with self.begin_call(request) as call:
            body = self.read_body(request, call)
            turn = await responses.prepare(call, body)
            if not call.usage.stream:
                result = await call.complete_chat(turn.chat_body, native=turn.native)
                model = result.body["model"]  # the upstream model that answered
                if turn.native.serves(call.target):
                    answer = turn.native_answer(result.body, body=turn.body, model=model)
                else:
                    answer = responses_api.to_response(
                        turn.body, result.body, response_id=turn.response_id, model=model, usage=result.usage
                    )
                await turn.keep(answer)
                return HttpResponse(orjson.dumps(answer), content_type=JSON, headers=call.headers())
            encoder = ResponsesStreamEncoder(body=turn.body, response_id=turn.response_id)
            relay = await call.open_chat_stream(
                turn.chat_body,
                native=turn.native,
                encode_chunk=encoder.feed,
                encode_end=encoder.finish,
                encode_error=lambda error: encoder.error(error.message),
            )
            encoder.model = call.target.model  # known once a deployment answered
            encoder.is_native = turn.native.serves(call.target)  # its events are relayed, not made
            return stream_response(responses.KeepingRelay(relay, encoder, turn), call)


class StoredResponseView(GatewayView):
    """`GET|DELETE /v1/responses/{id}` and `GET /v1/responses/{id}/input_items`: the team's own stored
    responses only. Not billable: one usage record of the request, endpoint "responses", no alias."""

    endpoint = "responses"

    async def get(self, request, response_id: str, part: str = ""):
        async with self.begin_call(request) as call:
            call.usage.stream = False
            stored = await responses.stored_or_404(call.principal, response_id)
            if part == "input_items":
                return json_response(responses.input_items_page(stored, request._request.GET))
            return json_response(stored.response)

    async def delete(self, request, response_id: str, part: str = ""):
        async with self.begin_call(request) as call:
            call.usage.stream = False
            if part:
                raise MethodNotAllowed(f"DELETE is not allowed on {clip(request.path)}.")
            await responses.delete_or_404(call.principal, response_id)
            return json_response({"id": response_id, "object": "response", "deleted": True})
