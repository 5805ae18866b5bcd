"""Provider kind -> adapter. A new provider is one module and one line here."""

from routing.providers.anthropic import AnthropicAdapter
from routing.providers.azure import AzureOpenAIAdapter
from routing.providers.base import ProviderAdapter
from routing.providers.gemini import GeminiAdapter
from routing.providers.openai import OpenAIAdapter
from routing.providers.openai_compatible import OpenAICompatibleAdapter

ADAPTERS: dict[str, ProviderAdapter] = {
    "openai": OpenAIAdapter(),
    "openai-compatible": OpenAICompatibleAdapter(),
    "azure-openai": AzureOpenAIAdapter(),
    "gemini": GeminiAdapter(),
    "anthropic": AnthropicAdapter(),
}

KINDS = ("openai", "azure-openai", "anthropic", "gemini", "openai-compatible")


def adapter_for(kind: str) -> ProviderAdapter:
    return ADAPTERS[kind]
