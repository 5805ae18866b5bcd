"""One UsageEvent per authenticated /v1 request: opened when the key checks out, closed exactly once."""

import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from billing.pricing import cost_of
from core.bounds import bounded_row
from core.values import Decision, ModelPrice, Principal, Target, TokenUsage


def new_request_id() -> str:
    return "req_" + uuid.uuid4().hex


@dataclass(slots=True)
class UsageEvent:
    request_id: str
    created_at: float  # epoch seconds
    started: float  # perf_counter
    principal: Principal
    endpoint: str
    stream: bool = False
    alias: str = ""
    deployment: str = ""
    provider: str = ""
    prompt: str = ""  # the prompt template's slug, on /v1/prompts calls
    prompt_version: int | None = None  # the version it served
    subscription_id: int | None = None
    status: int = 0
    error_type: str = ""
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    baseline_cost_usd: Decimal = Decimal(0)
    cache_hit: bool = False
    estimated: bool = False
    latency_ms: float | None = None
    ttfb_ms: float | None = None
    upstream_latency_ms: float | None = None
    strategy: str = ""  # the alias's routing strategy; "" when nothing was routed
    decision: dict | None = None  # core.values.Decision.to_record(): candidates, skips, attempts
    is_closed: bool = False
    # Admission control (billing/ledger): what was reserved, the x-ratelimit-* headers, a budget's downgrade.
    reservation: Any = None
    limit_headers: dict[str, str] = field(default_factory=dict)
    downgraded_from: str = ""
    # A cascade's steps whose answers were not used (routing/engine/cascade.py): billed all the same.
    discarded_cost_usd: Decimal = Decimal(0)
    discarded_prompt_tokens: int = 0
    discarded_completion_tokens: int = 0

    @classmethod
    def begin(cls, *, principal: Principal, endpoint: str, request_id: str) -> "UsageEvent":
        return cls(
            request_id=request_id,
            created_at=time.time(),
            started=time.perf_counter(),
            principal=principal,
            endpoint=endpoint,
        )

    def prompt_label(self) -> str:
        """slug@version: the x-tollway-prompt header, and the routing decision's `prompt`."""
        return f"{self.prompt}@{self.prompt_version}"

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 3)

    def use_decision(self, decision: Decision, target: Target | None) -> None:
        """What the engine decided, and the deployment that answered (or was tried last)."""
        self.attempts = len(decision.attempts)
        self.strategy = decision.strategy
        self.decision = decision.to_record()
        if target is not None:
            self.deployment, self.provider = target.deployment, target.provider

    def record_tokens(self, usage: TokenUsage, target: Target, *, baseline: ModelPrice | None = None) -> None:
        # A cascade's discarded steps count in tokens and cost; the baseline is what the answer alone would have
        # cost on the baseline deployment, so savings show what the climb saved (or lost).
        self.prompt_tokens = usage.prompt_tokens + self.discarded_prompt_tokens
        self.completion_tokens = usage.completion_tokens + self.discarded_completion_tokens
        self.cached_tokens, self.estimated = usage.cached_tokens, usage.is_estimated or self.estimated
        answer_cost = cost_of(usage, target.price)
        self.cost_usd = answer_cost + self.discarded_cost_usd
        self.baseline_cost_usd = cost_of(usage, baseline) if baseline is not None else answer_cost

    def record_discarded_step(self, usage: TokenUsage, target: Target) -> None:
        """A cascade step that answered but was not final: its tokens and cost join the record's."""
        cost = cost_of(usage, target.price)
        self.discarded_cost_usd += cost
        self.discarded_prompt_tokens += usage.prompt_tokens
        self.discarded_completion_tokens += usage.completion_tokens
        self.cost_usd += cost
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        self.estimated = self.estimated or usage.is_estimated

    def close(self, *, status: int, error_type: str = "") -> bool:
        """Set the outcome; False if already closed (the first outcome wins)."""
        if self.is_closed:
            return False
        self.is_closed = True
        self.status, self.error_type = status, error_type
        self.latency_ms = self.elapsed_ms()
        return True

    def to_row(self) -> dict[str, Any]:
        """The UsageRecord row; every string cut to its column, so no value can fail a batch insert."""
        p = self.principal
        return bounded_row(
            {
                "request_id": self.request_id,
                "created_at": self.created_at,
                "tenant_id": p.tenant_id,
                "team_id": p.team_id,
                "api_key_id": p.key_id,
                "tenant_name": p.tenant_name,
                "team_name": p.team_name,
                "key_prefix": p.key_prefix,
                "endpoint": self.endpoint,
                "alias": self.alias,
                "deployment": self.deployment,
                "provider": self.provider,
                "prompt": self.prompt,
                "prompt_version": self.prompt_version,
                "subscription_id": self.subscription_id,
                "status": self.status,
                "error_type": self.error_type,
                "attempts": self.attempts,
                "stream": self.stream,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "cached_tokens": self.cached_tokens,
                "cost_usd": str(self.cost_usd),
                "baseline_cost_usd": str(self.baseline_cost_usd),
                "cache_hit": self.cache_hit,
                "estimated": self.estimated,
                "latency_ms": self.latency_ms,
                "ttfb_ms": self.ttfb_ms,
                "upstream_latency_ms": self.upstream_latency_ms,
                "strategy": self.strategy,
                "decision": self._decision_record(),
            }
        )

    def _decision_record(self) -> dict | None:
        if self.decision is None or self.prompt_version is None:
            return self.decision
        return {**self.decision, "prompt": self.prompt_label()}
