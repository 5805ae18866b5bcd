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
