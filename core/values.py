"""Plain values the engine and adapters pass around. No Django here: bench/ drives these modules alone."""

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class ModelPrice:
    input_per_million: Decimal
    output_per_million: Decimal
    cached_input_per_million: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """One deployment, resolved for a call: where to send it, with what credential, at what price."""

    deployment: str  # the deployment's name in the catalogue
    provider: str  # the provider's name in the catalogue
    kind: str  # openai | azure-openai | anthropic | gemini | openai-compatible
    base_url: str  # no trailing slash
    model: str  # the upstream's own model id (Azure: the deployment name in the URL)
    price: ModelPrice
    api_key: str = field(default="", repr=False)
    api_version: str = ""  # Azure's api-version query parameter
    extra_headers: tuple[tuple[str, str], ...] = ()
    connect_timeout_s: float = 5.0
    timeout_s: float = 120.0
    max_output_tokens: int | None = None


@dataclass(slots=True)
class TokenUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    # True when the upstream reported nothing and we counted with a tokenizer.
    is_estimated: bool = False


# --- what the control plane keeps in memory (routing/control_plane/snapshot.py holds the current one) --------


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key and what it belongs to, as of the last change the process applied."""

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
    # Portal keys: their active subscriptions, oldest first, with the aliases each grants (budgets, limits and
    # records use the one that grants the called alias). Shared between keys: one team's keys hold one copy.
    grants: tuple[tuple[int, frozenset[str]], ...] = ()

    def subscription_for(self, alias: str) -> int | None:
        """The subscription that grants this alias to the key (the oldest, when several do)."""
        for subscription_id, aliases in self.grants:
            if alias in aliases:
                return subscription_id
        return None


@dataclass(frozen=True, slots=True)
class BudgetRule:
    """An active budget, as admission control needs it (billing/ledger)."""

    budget_id: int
    scope: str  # tenant | team | key | subscription
    target_id: int
    period: str  # daily | monthly
    limit_usd: Decimal | None
    limit_tokens: int | None
    action: str  # block | downgrade
    downgrade_alias: str = ""
    thresholds: tuple[int, ...] = ()  # percentages that notify once per period


@dataclass(frozen=True, slots=True)
class RateRule:
    rpm: int | None = None
    tpm: int | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    # alias -> deployments in priority order (enabled ones only)
    aliases: dict[str, tuple[Target, ...]] = field(default_factory=dict)
    # alias -> the price "savings" are measured against (its baseline deployment's)
    baselines: dict[str, ModelPrice] = field(default_factory=dict)
    # (scope, target id) -> its active budgets
    budgets: dict[tuple[str, int], tuple[BudgetRule, ...]] = field(default_factory=dict)
    budget_by_id: dict[int, BudgetRule] = field(default_factory=dict)  # the same rules, by budget id
    # Cluster-wide rate limits beside each key's own: per team, and per subscription (product defaults applied)
    team_limits: dict[int, RateRule] = field(default_factory=dict)
    subscription_limits: dict[int, RateRule] = field(default_factory=dict)
    keys_have_limits: bool = False  # some live key has its own RPM/TPM
    version: int = 0  # the change feed's version this reflects
    loaded_at: float = 0.0  # when it was last known current (epoch seconds)
