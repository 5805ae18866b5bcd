"""Token counts for upstreams that report none, and for admission's worst case, with OpenAI's o200k_base
encoding (shipped with bpe-openai, so it works offline). Records counted this way are marked `estimated`.

Counting is total over anything the body limit admits, and cheap enough for the event loop: the first
EXACT_CHARS characters of a body are tokenized exactly (at most a few ms); any longer text is bounded by its length,
times four if it is not ASCII. A token is at least one UTF-8 byte and a character at most four, so the bound
is never below the true count. (The tokenizer itself refuses a million characters, or 200,000 tokens, at once;
a body under TOLLWAY_MAX_BODY_BYTES holds more.)

`count_prompt_in_slices` is for answers that are themselves the count (count_tokens): the whole prompt, at most
SLICE_CHARS at a time, cut before a space, yielding to the event loop between slices (the tokenizer
holds the GIL, so a thread would not free the loop).
"""

import asyncio
from functools import lru_cache
from typing import Any

# Exact tokenizing costs ~0.02 ms per 1,000 characters of prose but up to ~0.9 ms for pathological text
# (32,000 emoji: 28 ms; "a" * 32,000: 12 ms): these keep the worst case per body, or per slice, a few ms.
EXACT_CHARS = 8_000
SLICE_CHARS = 4_000


@lru_cache(maxsize=1)
def _encoding():
    import bpe_openai

    return bpe_openai.get_encoding("o200k_base")


def upper_bound(text: str) -> int:
    """Never below the o200k count: each token is at least one UTF-8 byte, and a character at most four. O(1)
    (CPython keeps the ASCII flag): measuring the UTF-8 length took 30 ms for 5 MB of accented text."""
    return len(text) if text.isascii() else 4 * len(text)


class _Budget:
    """How many characters one count may still tokenize exactly."""

    __slots__ = ("chars",)

    def __init__(self, chars: int = EXACT_CHARS) -> None:
        self.chars = chars

    def count(self, text: Any) -> int:
        if not isinstance(text, str) or not text:
            return 0
        if len(text) > self.chars:
            return upper_bound(text)
        self.chars -= len(text)
        # encode_ordinary: a prompt quoting "<|endoftext|>" is text, not a special token (encode() raises).
        return len(_encoding().encode_ordinary(text))


def count_text(text: str) -> int:
    return _Budget().count(text)


def _content_texts(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [part.get("text") for part in content if isinstance(part, dict)]
    return []


def count_prompt(body: dict[str, Any]) -> int:
    """Messages (chat) or input (embeddings), with OpenAI's per-message overhead of 3 tokens plus 3 to prime."""
    budget = _Budget()
    if "messages" in body:
        messages = body.get("messages")
        messages = messages if isinstance(messages, list) else []
        total = 3
        for message in messages:
            if isinstance(message, dict):
                total += 3 + sum(budget.count(text) for text in _content_texts(message.get("content")))
        return total
    items = body.get("input")
    items = items if isinstance(items, list) else [items]
    return sum(budget.count(item) for item in items)


def _slices(text: str):
    start = 0
    while start < len(text):
        end = start + SLICE_CHARS
        if end < len(text):
            space = text.rfind(" ", start + 1, end)
            end = space if space > start else end
        yield text[start:end]
        start = end


async def count_text_in_slices(text: str) -> int:
    """The text's count however long: its slices add up to it, give or take a token a cut."""
    total = 0
    for piece in _slices(text):
        total += len(_encoding().encode_ordinary(piece))
        await asyncio.sleep(0)  # other requests run between slices
    return total


async def count_prompt_in_slices(body: dict[str, Any]) -> int:
    """count_prompt of a chat body, with every text tokenized."""
    messages = body.get("messages")
    messages = [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
    total = 3 + 3 * len(messages)
    for message in messages:
        for text in _content_texts(message.get("content")):
            if isinstance(text, str) and text:
                total += await count_text_in_slices(text)
    return total


def count_completion(body: dict[str, Any]) -> int:
    budget = _Budget()
    total = 0
    choices = body.get("choices")
    for choice in choices if isinstance(choices, list) else ():
        message = (choice.get("message") if isinstance(choice, dict) else None) or {}
        if not isinstance(message, dict):
            continue
        total += sum(budget.count(text) for text in _content_texts(message.get("content")))
        calls = message.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            function = (call.get("function") if isinstance(call, dict) else None) or {}
            if isinstance(function, dict):
                total += budget.count(function.get("name")) + budget.count(function.get("arguments"))
    return total
