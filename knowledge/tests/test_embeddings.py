"""The local embedder: 384-d unit vectors with sensible similarities, no network, long texts truncated."""

import random
import subprocess
import sys
from pathlib import Path

import numpy as np

from knowledge.processing.embeddings import DIMENSIONS, embed_query, embed_texts, get_embedder


def test_vectors_are_384_dimensional_unit_float32(embedder):
    vectors = embed_texts(["Our clinic opens at nine.", "Parking is free on Elm Street.", ""])
    assert vectors.shape == (3, DIMENSIONS) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    query = embed_query("When do you open?")
    assert query.shape == (DIMENSIONS,) and abs(float(np.linalg.norm(query)) - 1.0) < 1e-5
    assert embed_texts([]).shape == (0, DIMENSIONS)


def test_paraphrases_are_closer_than_unrelated_sentences(embedder):
    pairs = [
        ("What time do you open in the morning?", "When does the office open each day?",
         "The quarterly revenue grew by twelve percent."),
        ("Can I get my money back?", "How do I request a refund?", "Dogs need to be walked twice a day."),
        ("Where can I park my car?", "Is there parking near the clinic?", "Photosynthesis converts light into energy."),
    ]
    for anchor, paraphrase, unrelated in pairs:
        a, p, u = embed_texts([anchor, paraphrase, unrelated])
        assert float(a @ p) > 0.5 > float(a @ u) + 0.2, (anchor, float(a @ p), float(a @ u))


def test_a_text_embeds_the_same_alone_and_in_a_batch(embedder):
    texts = [f"Sentence {i} about {topic}." for i, topic in enumerate(["refunds", "parking", "x-rays"] * 15)]
    texts.append("A much longer text " * 40)
    batch = embed_texts(texts)  # 46 texts: two batches, padded to different lengths
    for index in (0, 7, 44, 45):
        assert float(batch[index] @ embed_query(texts[index])) > 0.999


def test_a_text_longer_than_the_window_is_truncated_not_refused(embedder):
    long_text = " ".join(f"word{i % 50} and more" for i in range(340))  # about 1000 words
    assert embedder.count_tokens(long_text) > 1000
    vector = embed_query(long_text)
    assert vector.shape == (DIMENSIONS,) and np.isfinite(vector).all()
    # Only the first 256 tokens count: what follows them changes nothing.
    assert float(vector @ embed_query(long_text + " entirely different ending about volcanoes")) > 0.9999


def test_the_model_is_loaded_once_per_process(embedder):
    assert get_embedder() is embedder is get_embedder()


def _varied_texts(count: int) -> list[str]:
    """Distinct texts from 3 to about 200 words, in no particular order of length."""
    words = ["refund", "parking", "x-ray", "invoice", "whitening", "sedation", "crown", "records", "clinic",
             "insurance", "appointment", "cancel", "garage", "children", "emergency", "pharmacy", "payment", "visit",
             "dentist"]
    rng = random.Random(3)
    return [" ".join(rng.choice(words) for _ in range(3 + (i * 37) % 200)) + "." for i in range(count)]


def test_rows_follow_the_order_of_the_texts_given(embedder):
    texts = _varied_texts(21)
    vectors = embed_texts(texts)
    alone = np.array([embed_query(text) for text in texts])
    similarity = vectors @ alone.T
    assert list(similarity.argmax(axis=1)) == list(range(len(texts)))
    assert float(np.diagonal(similarity).min()) > 0.9999
    reversed_vectors = embed_texts(texts[::-1])
    assert float((reversed_vectors[::-1] * vectors).sum(axis=1).min()) > 0.9999


def test_vectors_do_not_depend_on_the_batch_size(embedder):
    from knowledge.processing.embeddings import Embedder

    texts = _varied_texts(19)
    batched = Embedder(threads=1, batch_size=8).embed(texts)  # texts sorted by length, padded within each batch
    assert float((batched * embed_texts(texts)).sum(axis=1).min()) > 0.9999


def test_embedding_many_long_texts_keeps_memory_bounded(tmp_path):
    # In a fresh process: the peak RSS after embedding 96 texts at the token window, minus after loading the model.
    # VmHWM, not ru_maxrss: the latter keeps the parent's (pytest's) peak across exec.
    script = (
        "from pathlib import Path\n"
        "from knowledge.processing.embeddings import get_embedder\n"
        "def peak():\n"
        "    status = Path('/proc/self/status').read_text().splitlines()\n"
        "    return int(next(line for line in status if line.startswith('VmHWM:')).split()[1])\n"
        "embedder = get_embedder()\n"
        "embedder.embed(['warm up'])\n"
        "loaded = peak()\n"
        "texts = [' '.join(f'word{i}x{k}' for k in range(400)) for i in range(96)]\n"
        "assert min(embedder.count_tokens(t) for t in texts) > 256\n"
        "embedder.embed(texts)\n"
        "print((peak() - loaded) // 1024)\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                               cwd=Path(__file__).resolve().parents[2], check=True)
    grown_mb = int(completed.stdout.strip().splitlines()[-1])
    assert grown_mb < 200, f"inference took {grown_mb} MB more than the loaded model"
