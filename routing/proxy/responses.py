"""`/v1/responses` between the views and the pipeline: one turn of a (maybe continued) conversation.

prepare()      the previous response's conversation (previous_response_id), this turn's input items,
               the chat request the pipeline routes
Turn.keep()    the answer stored for the team (store, true by default), before the client sees it: a
               previous_response_id sent right after the answer always finds it, in any gateway process
KeepingRelay   the same for a stream, before its response.completed event goes out

A team whose logging policy stores no bodies (Principal.stores_bodies, portal/services/logging_policy.py) has
nothing kept: its answers say `store: false`, previous_response_id is a 400 naming the policy (not a 404 that
would read as a lost conversation), and its ids answer 404 without a read.
"""

from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError

from core.bounds import clip
from core.errors import InvalidRequest, ResponseNotFound, ResponsesUnavailable
from core.values import Principal
from routing.providers import openai_responses
from routing.proxy import responses_api, responses_store
from routing.proxy.pipeline import Call, StreamRelay
from routing.proxy.responses_stream import ResponsesStreamEncoder

MAX_ID_CHARS = 64
MAX_PAGE = 100
BODIES_NOT_STORED = "bodies_not_stored"


@dataclass
class Turn:
    team_id: int
    response_id: str
    chat_body: dict[str, Any]
    store: bool
    body: dict[str, Any]  # the request as answered: its `store` as the team's logging policy allows
    input_items: list[dict[str, Any]] = field(default_factory=list)  # the conversation's, this turn's last
    conversation: list[dict[str, Any]] = field(default_factory=list)  # chat messages so far, no instructions
    native_body: dict[str, Any] = field(default_factory=dict)

    @property
    def native(self) -> "NativeResponses":
        return NativeResponses(self.native_body)

    def native_answer(self, upstream: dict[str, Any], *, body: dict[str, Any], model: str) -> dict[str, Any]:
        """A natively answered Response, under this gateway's id and the client's own settings."""
        return {**upstream, **ours(body, response_id=self.response_id, model=model, store=self.store)}

    async def keep(self, answer: dict[str, Any]) -> None:
        if not self.store or answer.get("status") not in ("completed", "incomplete"):
            return
        messages = self.conversation + responses_api.output_as_chat_messages(answer["output"])
        stored = responses_store.Stored(response=answer, input_items=self.input_items, messages=messages)
        await responses_store.save(self.team_id, stored)


async def prepare(call: Call, body: dict[str, Any]) -> Turn:
    store = body.get("store", True)
    if not isinstance(store, bool):
        raise InvalidRequest("'store' must be a boolean.", param="store")
    history: list[dict[str, Any]] = []
    earlier_items: list[dict[str, Any]] = []
    previous_id = body.get("previous_response_id")
    if not call.principal.stores_bodies:
        if previous_id is not None:
            raise InvalidRequest(
                "This team's logging policy stores no bodies, so no response is kept to continue from: send the "
                "whole conversation in 'input' instead of 'previous_response_id'.",
                param="previous_response_id",
                code=BODIES_NOT_STORED,
            )
        store = False
    if previous_id is not None:
        if not isinstance(previous_id, str):
            raise InvalidRequest("'previous_response_id' must be a string.", param="previous_response_id")
        previous = await _load(call.principal, previous_id)
        if previous is None:
            raise ResponseNotFound(
                f"Previous response with id '{clip(previous_id, MAX_ID_CHARS)}' not found.",
                param="previous_response_id",
            )
        history = previous.messages
        earlier_items = previous.input_items + list(previous.response.get("output") or [])
    try:
        items = responses_api.input_items(body)
        chat_body = responses_api.to_chat_request(body, items=items, history=history)
        conversation = history + responses_api.to_chat_messages(items)
    except responses_api.InvalidResponsesRequest as exc:
        raise InvalidRequest(exc.message, param=exc.param, code=exc.code) from None
    return Turn(
        team_id=call.principal.team_id,
        response_id=responses_api.new_response_id(),
        chat_body=chat_body,
        store=store,
        body={**body, "store": store},
        input_items=earlier_items + items,
        conversation=conversation,
        native_body=_native_body(body, earlier_items + items),
    )


def ours(body: dict[str, Any], *, response_id: str, model: str, store: bool) -> dict[str, Any]:
    """What a natively answered Response says as this gateway's own: its id, model, chain and store."""
    return {
        "id": response_id,
        "model": model,
        "previous_response_id": body.get("previous_response_id"),
        "store": store,
    }


def _native_body(body: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    native = {k: v for k, v in body.items() if k not in ("previous_response_id", "store", "stream")}
    # The ids are this gateway's, unknown upstream; call_id pairs calls with their outputs.
    native["input"] = [{k: v for k, v in item.items() if k != "id"} for item in items]
    native["store"] = False
    return native


@dataclass(frozen=True)
class NativeResponses:
    """pipeline.NativeRoute for deployments that speak the Responses API."""

    body: dict[str, Any]

    def serves(self, target) -> bool:
        return openai_responses.serves(target)

    async def complete(self, client, target):
        return await openai_responses.create(client, target, self.body)

    async def open_stream(self, client, target):
        return await openai_responses.open_stream(client, target, self.body)


class KeepingRelay:
    """A StreamRelay whose answer is stored (Turn.keep) just before its last event is relayed."""

    def __init__(self, relay: StreamRelay, encoder: ResponsesStreamEncoder, turn: Turn) -> None:
        self.relay, self.encoder, self.turn = relay, encoder, turn

    async def __aiter__(self):
        async for piece in self.relay:
            if piece is self.encoder.terminal_event and self.encoder.final_response is not None:
                await self.turn.keep(self.encoder.final_response)
            yield piece

    async def close(self, *args) -> None:
        await self.relay.close(*args)


async def _load(principal: Principal, response_id: str) -> responses_store.Stored | None:
    if len(response_id) > MAX_ID_CHARS or not principal.stores_bodies:
        return None  # never one of ours, or the team keeps none
    try:
        return await responses_store.load(principal.team_id, response_id)
    except DatabaseError:
        raise ResponsesUnavailable("Stored responses cannot be read right now; retry shortly.") from None


async def stored_or_404(principal: Principal, response_id: str) -> responses_store.Stored:
    stored = await _load(principal, response_id)
    if stored is None:
        raise ResponseNotFound(f"Response with id '{clip(response_id, MAX_ID_CHARS)}' not found.")
    return stored


async def delete_or_404(principal: Principal, response_id: str) -> None:
    deleted = False
    if len(response_id) <= MAX_ID_CHARS and principal.stores_bodies:
        try:
            deleted = await responses_store.delete(principal.team_id, response_id)
        except DatabaseError:
            raise ResponsesUnavailable("Stored responses cannot be changed right now; retry shortly.") from None
    if not deleted:
        raise ResponseNotFound(f"Response with id '{clip(response_id, MAX_ID_CHARS)}' not found.")


def input_items_page(stored: responses_store.Stored, query) -> dict[str, Any]:
    """GET /v1/responses/{id}/input_items: `order` (desc by default, as OpenAI), `limit` (1-100, 20), `after`."""
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("'order' must be asc or desc.", param="order")
    raw_limit = query.get("limit", "20")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_PAGE:
        raise InvalidRequest(f"'limit' must be an integer from 1 to {MAX_PAGE}.", param="limit")
    items = stored.input_items if order == "asc" else stored.input_items[::-1]
    after = query.get("after")
    if after:
        ids = [item.get("id") for item in items]
        if after not in ids:
            raise InvalidRequest(f"No input item with id '{clip(after, MAX_ID_CHARS)}'.", param="after")
        items = items[ids.index(after) + 1 :]
    page = items[: int(raw_limit)]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > len(page),
    }
