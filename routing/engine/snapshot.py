"""The in-memory view of keys and catalogue each gateway process serves from. Rebuilt in the background;
requests only ever read the current one, so the hot path touches no database."""

from dataclasses import dataclass, field

from routing.engine.types import Target


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key and what it belongs to, as of the last snapshot."""

    key_id: int
    key_prefix: str
    secret_hash: str
    tenant_id: int
    tenant_name: str
    team_id: int
    team_name: str
    allowed_aliases: frozenset[str] | None  # None: every alias
    expires_at: float | None  # epoch seconds
    is_revoked: bool
    rpm_limit: int | None
    tpm_limit: int | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    keys_by_prefix: dict[str, Principal] = field(default_factory=dict)
    # alias -> deployments in priority order (enabled ones only)
    aliases: dict[str, tuple[Target, ...]] = field(default_factory=dict)
    loaded_at: float = 0.0


_current = Snapshot()


def current() -> Snapshot:
    return _current


def install(snapshot: Snapshot) -> None:
    global _current
    _current = snapshot
