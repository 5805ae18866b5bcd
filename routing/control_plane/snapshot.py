"""The in-memory view of the catalogue, limits and budgets each gateway process serves from (its values are in
core/values.py), and beside it the prompt templates callers reach through /v1/prompts (core/prompts.py). Kept
current by routing/control_plane/refresher.py from the change feed; requests only ever read the current ones,
so the hot path touches no database. Keys themselves are not here: they are looked up on demand and kept in
routing/control_plane/keys.py."""

from core.prompts import PromptCatalogue
from core.values import Snapshot

_current = Snapshot()
_prompts = PromptCatalogue()


def current() -> Snapshot:
    return _current


def install(snapshot: Snapshot) -> None:
    global _current
    _current = snapshot


def prompts() -> PromptCatalogue:
    return _prompts


def install_prompts(catalogue: PromptCatalogue) -> None:
    global _prompts
    _prompts = catalogue
