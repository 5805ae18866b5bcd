"""Versions of a prompt that no environment serves, read when a call names one (`slug@3`, `"version": 3`).

Why on demand, not all loaded: every version created is kept forever, and a template edited for months has
hundreds, most never called again; the snapshot keeps only the ones served (at most two per environment). A
named version is read off the event loop on the control-plane thread and kept in a bounded LRU: versions are
immutable, so a kept one is never stale. Numbers above the template's latest are refused without a read, so a
caller cannot make the gateway query the database for versions that do not exist.
"""

from collections import OrderedDict

from config.db_thread import run_in_db
from core.prompts import FrozenVersion, PublishedPrompt
from routing.control_plane import loader

LANE = "control"  # as the key lookups: a caller is waiting
MAX_KEPT = 1024

_kept: OrderedDict[tuple[int, int], FrozenVersion] = OrderedDict()


async def version_of(prompt: PublishedPrompt, number: int) -> FrozenVersion | None:
    """The version `number` of this template: served ones from the snapshot, others from the database once."""
    served = prompt.versions.get(number)
    if served is not None:
        return served
    if not 1 <= number <= prompt.latest_version:
        return None
    key = (prompt.template_id, number)
    kept = _kept.get(key)
    if kept is not None:
        _kept.move_to_end(key)
        return kept
    found = await run_in_db(loader.prompt_version, prompt.template_id, number, lane=LANE)
    if found is not None:
        _kept[key] = found
        while len(_kept) > MAX_KEPT:
            _kept.popitem(last=False)
    return found


def kept() -> int:
    return len(_kept)
