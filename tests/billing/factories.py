from datetime import UTC, datetime
from decimal import Decimal

import factory

from billing.models import UsageRecord


class UsageRecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UsageRecord

    request_id = factory.Sequence(lambda n: f"req_{n:032x}")
    created_at = factory.LazyFunction(lambda: datetime(2026, 11, 1, 12, 0, tzinfo=UTC))
    tenant_name, team_name, key_prefix = "Acme", "Checkout", "sk-tw-abcdEFGH"
    endpoint, alias, deployment, provider = "chat.completions", "gpt-4o-mini", "main-gpt-4o-mini", "openai-main"
    status = 200
    attempts = 1
    prompt_tokens, completion_tokens = 9, 0
    cost_usd = Decimal("0.0000013500")
    latency_ms, ttfb_ms, upstream_latency_ms = 12.5, 12.5, 10.0
