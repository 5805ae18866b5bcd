"""OpenAI itself: the compatible adapter with OpenAI's base URL as the default."""

from routing.providers.openai_compatible import OpenAICompatibleAdapter

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIAdapter(OpenAICompatibleAdapter):
    kind = "openai"
