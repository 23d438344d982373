"""The local embedder: 384-d unit vectors with sensible similarities, no network, long texts truncated."""

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
