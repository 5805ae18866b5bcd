"""The in-memory view of the catalogue, limits and budgets each gateway process serves from (its values are in
core/values.py). Kept current by routing/control_plane/refresher.py from the change feed; requests only ever
read the current one, so the hot path touches no database. Keys themselves are not here: they are looked up on
demand and kept in routing/control_plane/keys.py."""

from core.values import Snapshot

_current = Snapshot()


def current() -> Snapshot:
    return _current


def install(snapshot: Snapshot) -> None:
    global _current
    _current = snapshot
