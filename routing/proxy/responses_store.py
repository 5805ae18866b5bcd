"""Stored responses (routing.models.StoredResponse) for /v1/responses: kept per team, in the database so that
every gateway process sees them, always read and written off the event loop (a thread per query).

A team only ever reaches its own: another team's id is answered as an unknown one (404). Rows older than
TOLLWAY_RESPONSES_RETENTION_DAYS are invisible at once and deleted by the purge task (purge_expired), as are
rows of teams whose logging policy stores no bodies (a gateway that had not yet applied the change may have
stored one after the policy's own deletion).
"""

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django.db.models import Q
from django.utils import timezone

from routing.models import StoredResponse

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Stored:
    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    messages: list[dict[str, Any]]


def horizon(now: datetime | None = None) -> datetime:
    """Responses created before this are past retention."""
    return (now or timezone.now()) - timedelta(days=settings.TOLLWAY_RESPONSES_RETENTION_DAYS)


def _live(team_id: int):
    return StoredResponse.objects.filter(team_id=team_id, created_at__gte=horizon())


def _save(team_id: int, stored: Stored) -> None:
    close_old_connections()
    StoredResponse.objects.create(
        id=stored.response["id"],
        team_id=team_id,
        response=stored.response,
        input_items=stored.input_items,
        messages=stored.messages,
    )


def _load(team_id: int, response_id: str) -> Stored | None:
    close_old_connections()
    row = _live(team_id).filter(id=response_id).values("response", "input_items", "messages").first()
    return None if row is None else Stored(**row)


def _delete(team_id: int, response_id: str) -> bool:
    close_old_connections()
    return _live(team_id).filter(id=response_id).delete()[0] > 0


async def save(team_id: int, stored: Stored) -> bool:
    """Keep a response; False (logged) when the database refused: the answer still goes out."""
    try:
        await asyncio.to_thread(_save, team_id, stored)
    except Exception:
        log.exception("could not store response %s", stored.response.get("id"))
        return False
    return True


async def load(team_id: int, response_id: str) -> Stored | None:
    return await asyncio.to_thread(_load, team_id, response_id)


async def delete(team_id: int, response_id: str) -> bool:
    return await asyncio.to_thread(_delete, team_id, response_id)


def purge_expired(*, now: datetime | None = None, batch_size: int = 1000) -> int:
    """Delete stored responses past retention or of teams that store no bodies, in batches (each its own
    statement); the number deleted."""
    purged = 0
    expired = Q(created_at__lt=horizon(now)) | Q(team__stores_bodies=False)
    while True:
        ids = list(StoredResponse.objects.filter(expired).values_list("pk", flat=True)[:batch_size])
        if not ids:
            return purged
        purged += StoredResponse.objects.filter(pk__in=ids).delete()[0]
        if len(ids) < batch_size:
            return purged
