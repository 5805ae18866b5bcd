"""Token counts for upstreams that report none, with OpenAI's o200k_base encoding (shipped with bpe-openai,
so it works offline). Records counted this way are marked `estimated`."""

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _encoding():
    import bpe_openai

    return bpe_openai.get_encoding("o200k_base")


def count_text(text: str) -> int:
    return len(_encoding().encode(text)) if text else 0


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def count_prompt(body: dict[str, Any]) -> int:
    """Messages (chat) or input (embeddings), with OpenAI's per-message overhead of 3 tokens plus 3 to prime."""
    if "messages" in body:
        messages = body.get("messages") or []
        return sum(3 + count_text(_content_text(m.get("content"))) for m in messages if isinstance(m, dict)) + 3
    items = body.get("input")
    items = items if isinstance(items, list) else [items]
    return sum(count_text(item) for item in items if isinstance(item, str))


def count_completion(body: dict[str, Any]) -> int:
    total = 0
    for choice in body.get("choices") or []:
        message = choice.get("message") or {}
        total += count_text(_content_text(message.get("content")))
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            total += count_text(function.get("name", "")) + count_text(function.get("arguments", ""))
    return total
