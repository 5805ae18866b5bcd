"""Azure OpenAI: OpenAI's body, but the deployment is in the URL, the key in `api-key`, plus `api-version`.

URL: {base_url}/openai/deployments/{deployment}/chat/completions?api-version=... where base_url is the
resource endpoint (https://NAME.openai.azure.com) and the target's `model` is the Azure deployment name.
"""

from urllib.parse import quote

from core.values import Target
from routing.providers.openai_compatible import OpenAICompatibleAdapter

DEFAULT_API_VERSION = "2024-10-21"


class AzureOpenAIAdapter(OpenAICompatibleAdapter):
    kind = "azure-openai"

    def _url(self, target: Target, operation: str) -> str:
        version = target.api_version or DEFAULT_API_VERSION
        deployment = quote(target.model, safe="")
        return f"{target.base_url}/openai/deployments/{deployment}/{operation}?api-version={quote(version)}"

    def chat_url(self, target: Target) -> str:
        return self._url(target, "chat/completions")

    def embeddings_url(self, target: Target) -> str:
        return self._url(target, "embeddings")

    def headers(self, target: Target) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if target.api_key:
            headers["api-key"] = target.api_key
        headers.update(target.extra_headers)
        return headers
