"""Token counts for upstreams that report none, and for admission's worst case, with OpenAI's o200k_base
encoding (its table shipped with bpe-openai, so it works offline; counted here, see O200kCounter). Records
counted this way are marked `estimated`.

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
import base64
import gzip
import heapq
import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

import regex

# Exact tokenizing costs ~0.02 ms per 1,000 characters of prose but up to ~0.9 ms for pathological text
# (32,000 emoji: 28 ms; "a" * 32,000: 12 ms): these keep the worst case per body, or per slice, a few ms.
EXACT_CHARS = 8_000
SLICE_CHARS = 4_000


@lru_cache(maxsize=1)
def _counter() -> "O200kCounter":
    return O200kCounter(_o200k_ranks())


def load() -> None:
    _counter()


_loading: asyncio.Future | None = None


async def ready() -> None:
    """Have the encoding read (about 1 s and 25 MB, once per process) on a thread, not on the event loop. Every
    async path that counts awaits this first; a process that never counts never pays for it."""
    global _loading
    if _counter.cache_info().currsize:
        return
    if _loading is None:
        _loading = asyncio.ensure_future(asyncio.to_thread(load))
    try:
        await asyncio.shield(_loading)
    except Exception:
        _loading = None  # a failed read is tried again by the next caller
        raise


def rough_prompt(body: dict[str, Any]) -> int:
    """A quick guess at count_prompt (about four characters a token), never zero: for a stream's provisional
    record, which is kept only if the process dies mid-stream and is marked estimated."""
    messages = body.get("messages")
    texts = (
        [t for m in messages if isinstance(m, dict) for t in _content_texts(m.get("content"))]
        if isinstance(messages, list)
        else []
    )
    return 3 + 3 * len(texts) + sum(len(t) // 4 + 1 for t in texts if isinstance(t, str))


def _o200k_ranks() -> dict[bytes, int]:
    # bpe-openai ships OpenAI's o200k_base table (MIT); its data is read as a file, without loading its native
    # tokenizer, which costs about 140 MB of memory per process where this table costs about 20.
    package = importlib.util.find_spec("bpe_openai")
    path = Path(package.submodule_search_locations[0]) / "data" / "o200k_base.tiktoken.gz"
    ranks: dict[bytes, int] = {}
    with gzip.open(path, "rb") as lines:
        for line in lines:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


# o200k_base's pre-tokenizer (OpenAI's, as tiktoken and bpe-openai have it): text splits into these pieces, and
# each piece into tokens by byte-pair merges.
_O200K_PIECES = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_SHORT_PIECE = 64  # bytes: merged by rescanning; longer pieces through a heap (linear-log, for "a" * 8000)


class O200kCounter:
    """How many o200k_base tokens a text is, without the token ids: what estimates and limits need. The same
    merges as tiktoken (lowest rank first, leftmost among equals), so the same counts (tested against
    bpe-openai)."""

    def __init__(self, ranks: dict[bytes, int]) -> None:
        self._ranks = ranks
        self._pieces = regex.compile(_O200K_PIECES).findall
        self._known: dict[bytes, int] = {}  # pieces counted before (prose repeats its words)

    def count(self, text: str) -> int:
        ranks, known = self._ranks, self._known
        total = 0
        for piece in self._pieces(text):
            data = piece.encode()
            if data in ranks:
                total += 1
                continue
            count = known.get(data)
            if count is None:
                count = _merge_count(data, ranks) if len(data) <= _SHORT_PIECE else _heap_merge_count(data, ranks)
                if len(known) < 100_000 and len(data) <= 1024:
                    known[data] = count
            total += count
        return total


def _merge_count(data: bytes, ranks: dict[bytes, int]) -> int:
    parts = [data[i : i + 1] for i in range(len(data))]
    while len(parts) > 1:
        best_rank, best = None, -1
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and (best_rank is None or rank < best_rank):
                best_rank, best = rank, i
        if best < 0:
            break
        parts[best : best + 2] = [parts[best] + parts[best + 1]]
    return len(parts)


def _heap_merge_count(data: bytes, ranks: dict[bytes, int]) -> int:
    """The same merges as _merge_count, in O(n log n): parts are a linked list of byte ranges, candidate pairs a
    heap of (rank, start); a popped pair still standing is merged and its neighbours' pairs pushed."""
    n = len(data)
    end = list(range(1, n + 1))  # part starting at i ends at end[i]
    prev = list(range(-1, n - 1))
    nxt = list(range(1, n + 1))  # n: none
    alive = [True] * n
    heap = []

    def push(i: int) -> None:
        j = nxt[i]
        if j < n:
            rank = ranks.get(data[i : end[j]])
            if rank is not None:
                heap.append((rank, i, end[j]))

    for i in range(n - 1):
        push(i)
    heapq.heapify(heap)
    parts = n
    while heap:
        rank, i, stop = heapq.heappop(heap)
        j = nxt[i] if alive[i] else n
        if j >= n or end[j] != stop:
            continue  # this pair no longer stands: one side was merged since it was pushed
        end[i], alive[j] = stop, False
        nxt[i] = nxt[j]
        if nxt[i] < n:
            prev[nxt[i]] = i
        parts -= 1
        for k in (prev[i], i):
            if k >= 0:
                m = nxt[k]
                if m < n:
                    candidate = ranks.get(data[k : end[m]])
                    if candidate is not None:
                        heapq.heappush(heap, (candidate, k, end[m]))
    return parts


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
        # A prompt quoting "<|endoftext|>" is text, not a special token.
        return _counter().count(text)


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
    await ready()
    total = 0
    for piece in _slices(text):
        total += _counter().count(piece)
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
