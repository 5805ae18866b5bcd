"""Which counters a request must reserve from, and how much: pure functions over the snapshot."""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from billing import token_estimate
from billing.ledger.counters import Counter, budget_counter_key, budget_period, minute_window, usd_to_ticks
from billing.pricing import cost_of
from core.values import BudgetRule, Principal, RateRule, Snapshot, Target, TokenUsage

# Reserved for the answer when the request sets no max_tokens and the deployment states no maximum.
DEFAULT_OUTPUT_RESERVE = 4096


@dataclass(frozen=True, slots=True)
class WorstCase:
    prompt_tokens: int
    output_tokens: int
    cost_usd: Decimal

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens


def worst_case(body: dict[str, Any], targets: tuple[Target, ...], *, endpoint: str) -> WorstCase:
    """Prompt tokens plus the most the answer may use, at the dearest deployment fail-over could reach."""
    prompt = token_estimate.count_prompt(body)
    output = 0
    if endpoint != "embeddings":
        requested = body.get("max_completion_tokens") or body.get("max_tokens")
        ceilings = [t.max_output_tokens for t in targets if t.max_output_tokens]
        if isinstance(requested, int) and requested > 0:
            output = min([requested, *ceilings]) if ceilings else requested
        else:
            output = max(ceilings) if ceilings else DEFAULT_OUTPUT_RESERVE
    cost = max(
        (cost_of(TokenUsage(prompt_tokens=prompt, completion_tokens=output), t.price) for t in targets),
        default=Decimal(0),
    )
    return WorstCase(prompt_tokens=prompt, output_tokens=output, cost_usd=cost)


def _rate_counters(label: str, owner: str, rule: RateRule, need: WorstCase, now: float) -> list[Counter]:
    start, end = minute_window(now)
    minute = int(start // 60)
    counters = []
    if rule.rpm is not None:
        counters.append(Counter(f"rpm:{owner}:{minute}", "requests", rule.rpm, 1, start, end, label))
    if rule.tpm is not None:
        counters.append(Counter(f"tpm:{owner}:{minute}", "tokens", rule.tpm, need.tokens, start, end, label))
    return counters


def _budget_counters(rule: BudgetRule, need: WorstCase, now: float, *, enforce: bool) -> list[Counter]:
    start, end = budget_period(rule.period, now)
    label = f"{rule.scope} budget"
    counters = []
    if rule.limit_usd is not None:
        limit = usd_to_ticks(rule.limit_usd) if enforce else None
        counters.append(
            Counter(
                budget_counter_key(rule.budget_id, "usd", start),
                "usd",
                limit,
                usd_to_ticks(need.cost_usd),
                start,
                end,
                label,
                rule.budget_id,
            )
        )
    if rule.limit_tokens is not None:
        limit = rule.limit_tokens if enforce else None
        counters.append(
            Counter(
                budget_counter_key(rule.budget_id, "tokens", start),
                "tokens",
                limit,
                need.tokens,
                start,
                end,
                label,
                rule.budget_id,
            )
        )
    return counters


def budgets_for(snapshot: Snapshot, principal: Principal, subscription_id: int | None) -> list[BudgetRule]:
    owners = [("tenant", principal.tenant_id), ("team", principal.team_id), ("key", principal.key_id)]
    if subscription_id is not None:
        owners.append(("subscription", subscription_id))
    return [rule for owner in owners for rule in snapshot.budgets.get(owner, ())]


def has_limits(snapshot: Snapshot, principal: Principal, subscription_id: int | None) -> bool:
    """Cheap test first: most calls have no limit at all and must not pay for counting their prompt."""
    return (
        principal.rpm_limit is not None
        or principal.tpm_limit is not None
        or principal.team_id in snapshot.team_limits
        or (subscription_id is not None and subscription_id in snapshot.subscription_limits)
        or bool(snapshot.budgets and budgets_for(snapshot, principal, subscription_id))
    )


def needs_worst_case(snapshot: Snapshot, principal: Principal, subscription_id: int | None) -> bool:
    """Only TPM limits and budgets count tokens or dollars: a call under RPM limits alone skips counting its
    prompt (NOTHING_NEEDED stands in)."""
    rules = (
        RateRule(principal.rpm_limit, principal.tpm_limit),
        snapshot.team_limits.get(principal.team_id),
        snapshot.subscription_limits.get(subscription_id) if subscription_id is not None else None,
    )
    return any(r is not None and r.tpm is not None for r in rules) or bool(
        budgets_for(snapshot, principal, subscription_id)
    )


NOTHING_NEEDED = WorstCase(prompt_tokens=0, output_tokens=0, cost_usd=Decimal(0))


def counters_for(
    snapshot: Snapshot,
    principal: Principal,
    *,
    subscription_id: int | None,
    need: WorstCase,
    now: float,
    unenforced_budgets: frozenset[int] = frozenset(),
) -> list[Counter]:
    counters = _rate_counters(
        "key", f"key:{principal.key_id}", RateRule(principal.rpm_limit, principal.tpm_limit), need, now
    )
    team_rule = snapshot.team_limits.get(principal.team_id)
    if team_rule is not None:
        counters += _rate_counters("team", f"team:{principal.team_id}", team_rule, need, now)
    if subscription_id is not None and subscription_id in snapshot.subscription_limits:
        rule = snapshot.subscription_limits[subscription_id]
        counters += _rate_counters("subscription", f"subscription:{subscription_id}", rule, need, now)
    for rule in budgets_for(snapshot, principal, subscription_id):
        counters += _budget_counters(rule, need, now, enforce=rule.budget_id not in unenforced_budgets)
    return counters


_has_limits_cache: tuple[int, float, bool] = (0, 0.0, False)


def snapshot_has_limits(snapshot: Snapshot) -> bool:
    """Does any key, team, subscription or budget in the snapshot limit calls? For readiness: looked at once
    per loaded snapshot, not per probe."""
    global _has_limits_cache
    if _has_limits_cache[:2] == (id(snapshot), snapshot.loaded_at):
        return _has_limits_cache[2]
    found = bool(snapshot.team_limits or snapshot.subscription_limits or snapshot.budgets or snapshot.keys_have_limits)
    _has_limits_cache = (id(snapshot), snapshot.loaded_at, found)
    return found
