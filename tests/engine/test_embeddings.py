"""routing/engine/embeddings.py runs all-MiniLM-L6-v2 as sentence-transformers does: its similarities match the
reference implementation's (sentence-transformers 5 on torch 2.13, CPU, max_seq_length 128, computed once by hand
from the same package's weights: bench/embedder_eval.py's minilm-torch), offline, from the installed package."""

import asyncio

import numpy as np
import pytest

from routing.engine import embeddings

TEXTS = [
    "Write a Python function that reverses a string",
    "Fix this SQL query: SELECT * FROM users",
    "Hi!",
    "Good morning!",
    "What was the population of Mongolia in 1990?",
]
# sentence-transformers' cosine similarities of TEXTS, to 4 places
REFERENCE = [
    [1.0, -0.0143, 0.1084, 0.0206, 0.0943],
    [-0.0143, 1.0, 0.1389, 0.1167, 0.1202],
    [0.1084, 0.1389, 1.0, 0.4813, 0.1074],
    [0.0206, 0.1167, 0.4813, 1.0, 0.0384],
    [0.0943, 0.1202, 0.1074, 0.0384, 1.0],
]
REFERENCE_FIRST_VALUES = [0.0108, 0.09824, 0.04415, 0.02087]  # TEXTS[0]'s embedding, its first 4 of 384


@pytest.fixture(scope="module")
def model():
    return embeddings.get_model()


def test_similarities_match_sentence_transformers(model, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    vectors = model.embed(TEXTS)
    assert vectors.shape == (5, embeddings.DIMENSIONS) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors @ vectors.T, REFERENCE, atol=2e-3)
    np.testing.assert_allclose(vectors[0][:4], REFERENCE_FIRST_VALUES, atol=1e-3)


def test_a_batch_embeds_each_text_as_it_would_alone(model):
    # Padding in a batch must not change a text's embedding (the attention mask and the mean pooling skip it).
    alone = np.stack([model.embed([text])[0] for text in TEXTS])
    np.testing.assert_allclose(model.embed(TEXTS), alone, atol=1e-5)


def test_a_long_text_is_read_from_its_end_within_the_token_bound(model):
    question = "Hi! Good morning!"
    long_text = "lorem ipsum dolor sit amet " * 400 + question
    tokens = model.tokenizer.encode(long_text).ids
    assert len(tokens) == embeddings.MAX_TOKENS
    assert model.tokenizer.decode(tokens).endswith("hi! good morning!")
    assert model.embed([""]).shape == (1, embeddings.DIMENSIONS)  # [CLS] [SEP] only: still a vector


def test_examples_are_embedded_once_per_set_and_off_the_event_loop(model):
    examples = ("an example never embedded before", "and another")
    assert not embeddings.has_examples_cached(examples)
    first = embeddings.example_matrix(examples)
    assert embeddings.has_examples_cached(examples)
    assert embeddings.example_matrix(examples) is first  # the cached matrix, not a new embedding
    assert not first.flags.writeable

    async def embed_in_thread():
        import threading

        return await embeddings.run_off_loop(lambda: threading.current_thread().name)

    assert asyncio.run(embed_in_thread()).startswith("tollway-embed")
