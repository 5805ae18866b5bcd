"""Our o200k_base counter gives the native tokenizer's counts (bpe-openai, as OpenAI's tiktoken), on the
repository's own text and on text made to be awkward; and reading it costs a fraction of the native one's
memory (see billing/token_estimate.py)."""

import random
from pathlib import Path

import bpe_openai
import pytest

from billing import token_estimate

REPO = Path(__file__).resolve().parents[2]
AWKWARD = "aé漢字🙂 \n\t\r0123456789.,;:'\"!?-_/\\<>|ΩЖ\u0301\u200d'sTHE'LL"


@pytest.fixture(scope="module")
def native():
    return bpe_openai.get_encoding("o200k_base")


def samples() -> list[str]:
    texts = [p.read_text(errors="ignore") for p in sorted(REPO.glob("**/*.py")) if ".venv" not in p.parts][:300]
    texts += [(REPO / "README.md").read_text()]
    chance = random.Random(20261202)
    texts += ["".join(chance.choice(AWKWARD) for _ in range(chance.randint(1, 300))) for _ in range(300)]
    texts += ["a" * 8000, "🙂" * 2000, "1" * 5000, " " * 3000, "\n" * 200, "ab" * 4000, "<|endoftext|>", "Hi"]
    return texts


def test_counts_match_the_native_tokenizer_on_every_sample(native):
    counter = token_estimate._counter()
    mismatched = [text[:40] for text in samples() if counter.count(text) != len(native.encode_ordinary(text))]
    assert mismatched == []


def test_a_piece_counted_twice_is_counted_the_same_from_memory(native):
    counter = token_estimate._counter()
    text = "Tollway routes every call to the cheapest deployment that meets its needs. " * 40
    assert counter.count(text) == counter.count(text) == len(native.encode_ordinary(text))
