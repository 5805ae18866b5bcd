"""POST /v1/feedback: a caller rates one of its own calls, `{"request_id": "req_...", "score": 0.0-1.0}`.

The request id is the `x-request-id` the gateway answered the call with (its usage record's). Another team's
call answers 404, as an unknown one does. Usage records are stored in batches, so a rating that arrives before
its call's record waits for it, up to TOLLWAY_FEEDBACK_WAIT_S, off the event loop (its own database lane). The
rating is stored (billing.Feedback: the last one wins) and, when the call was routed by a bandit, teaches that
bandit its reward; a replaced rating's reward is taken back first.
"""

import asyncio
import math
import time

from django.conf import settings

from billing import selectors, services
from billing.models import UsageRecord
from config import db_thread
from core.errors import InvalidRequest, NotFound
from core.values import DEFAULT_POLICY, BanditPolicy, Principal
from routing.control_plane import snapshot
from routing.engine import bandit
from routing.proxy import pipeline

MAX_REQUEST_ID_CHARS = 64  # UsageRecord.request_id
POLL_S = 0.1


class UnknownCall(NotFound):
    code = "unknown_request_id"


def parse(body: object) -> tuple[str, float]:
    if not isinstance(body, dict):
        raise InvalidRequest('The body must be a JSON object: {"request_id": "...", "score": 0.0-1.0}.')
    request_id, score = body.get("request_id"), body.get("score")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID_CHARS:
        raise InvalidRequest(
            f"request_id must be the x-request-id of a call, 1 to {MAX_REQUEST_ID_CHARS} characters.",
            param="request_id",
        )
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise InvalidRequest("score must be a number from 0 to 1.", param="score")
    if not 0 <= score <= 1:
        raise InvalidRequest(f"score must be from 0 to 1, not {score}.", param="score")
    return request_id, float(score)


async def rate(principal: Principal, *, request_id: str, score: float) -> dict:
    usage = await _wait_for_call(principal.team_id, request_id)
    alias, policy = _bandit_of(usage)
    reward = None
    if policy is not None:
        reward = _reward(usage, alias, policy, score)
    previous = await db_thread.run_in_db(services.rate_call, usage=usage, score=score, reward=reward, lane="feedback")
    board = pipeline.engine().bandit
    if previous is not None and alias:
        board.observe(alias, usage.deployment, previous, count=-1)  # the last rating wins
    if reward is not None:
        board.observe(alias, usage.deployment, reward, policy=policy)
    return {"object": "feedback", "request_id": request_id, "score": score, "replaced": previous is not None}


async def _wait_for_call(team_id: int, request_id: str) -> UsageRecord:
    deadline = time.monotonic() + settings.TOLLWAY_FEEDBACK_WAIT_S
    while True:
        usage = await db_thread.run_in_db(
            selectors.call_of_team, team_id=team_id, request_id=request_id, lane="feedback"
        )
        if usage is not None:
            return usage
        if time.monotonic() >= deadline:
            raise UnknownCall("No call of this team has that request_id.", param="request_id")
        await asyncio.sleep(POLL_S)


def _bandit_of(usage: UsageRecord) -> tuple[str, BanditPolicy | None]:
    """The alias whose bandit served the call (a fallback's, when one answered) and its policy now; None when
    the call was not a bandit's, failed, or its alias no longer routes by one."""
    attempts = (usage.decision or {}).get("attempts") or []
    alias = attempts[-1].get("alias") if attempts and isinstance(attempts[-1], dict) else usage.alias
    if usage.status != 200 or not usage.deployment or not isinstance(alias, str):
        return "", None
    policy = snapshot.current().policies.get(alias, DEFAULT_POLICY)
    if policy.strategy != "bandit":
        return alias, None
    return alias, policy.bandit or BanditPolicy()


def _reward(usage: UsageRecord, alias: str, policy: BanditPolicy, score: float) -> float:
    targets = snapshot.current().aliases.get(alias, ())
    latency = pipeline.engine().latency
    estimates = [latency.estimate_ms(t.deployment) for t in targets]
    return bandit.call_reward(
        policy,
        feedback=score,
        cost_usd=usage.cost_usd,
        dearest_cost_usd=bandit.dearest_cost(
            targets, prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens
        ),
        latency_ms=usage.latency_ms,
        slowest_ms=max((ms for ms in estimates if ms is not None), default=None),
    )
