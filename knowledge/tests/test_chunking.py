"""Chunks fit the model, overlap, follow paragraphs and headings, and keep their page numbers."""

import pytest

from knowledge.processing.chunking import MAX_WORDS, chunk_pages
from knowledge.processing.embeddings import MAX_TOKENS
from knowledge.tests.handbook import handbook_pages


def words(n, word="word"):
    return " ".join(f"{word}{i}" for i in range(n))


def test_chunks_of_a_long_document_fit_the_word_budget_and_are_numbered_in_order():
    chunks = chunk_pages(handbook_pages())
    assert len(chunks) > 20
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert 0 < chunk.word_count <= MAX_WORDS
        assert chunk.word_count == len(chunk.text.split())
        assert chunk.page_start <= chunk.page_end
    # Most chunks are near full: the budget is used, not wasted on tiny pieces.
    assert sorted(c.word_count for c in chunks)[len(chunks) // 2] >= 120


def test_every_chunk_of_a_long_realistic_text_stays_within_the_token_window(embedder):
    chunks = chunk_pages(handbook_pages(pages=60, seed=3), count_tokens=embedder.count_tokens)
    assert len(chunks) > 40
    for chunk in chunks:
        assert embedder.count_tokens(chunk.text) == chunk.token_count <= MAX_TOKENS, chunk.text
    # Words alone would not do for text full of numbers and addresses: some chunks were cut by tokens.
    assert any(chunk.word_count < 130 and chunk.token_count > 200 for chunk in chunks)


def test_plain_prose_chunked_by_words_stays_within_the_token_window(embedder):
    prose = " ".join(
        "The receptionist confirms each appointment by phone the day before and answers any questions about the visit."
        for _ in range(200)
    )
    for chunk in chunk_pages([(1, prose)]):
        assert embedder.count_tokens(chunk.text) <= MAX_TOKENS


def test_every_word_is_kept_in_order():
    pages = handbook_pages(pages=12)
    source = " ".join(" ".join(text.split()) for _, text in pages).split()
    chunks = chunk_pages(pages)
    # Without the overlap the chunks read back as the document.
    rebuilt = list(chunks[0].text.split())
    for previous, chunk in zip(chunks, chunks[1:]):
        tokens = chunk.text.split()
        shared = next(n for n in range(min(len(tokens), 60), -1, -1) if rebuilt[len(rebuilt) - n :] == tokens[:n] or n == 0)
        rebuilt.extend(tokens[shared:])
    assert rebuilt == source


def test_consecutive_chunks_overlap_by_whole_sentences():
    text = " ".join(f"Sentence number {i} says something about topic {i}." for i in range(100))
    chunks = chunk_pages([(1, text)])
    assert len(chunks) >= 3
    for previous, chunk in zip(chunks, chunks[1:]):
        first_sentence = chunk.text.split(". ")[0] + "."
        assert first_sentence in previous.text
        assert first_sentence.startswith("Sentence number")


def test_a_paragraph_that_fits_is_never_split():
    paragraphs = [words(60, f"p{n}w") + "." for n in range(8)]
    chunks = chunk_pages([(1, "\n\n".join(paragraphs))])
    for paragraph in paragraphs:
        assert any(paragraph in chunk.text for chunk in chunks)


def test_a_heading_stays_with_the_text_after_it():
    pages = [(1, words(150, "intro") + ".\n\nRefund policy\n\nRefunds are issued within 14 days. " + words(40, "refund") + ".")]
    chunks = chunk_pages(pages)
    for chunk in chunks:
        assert not chunk.text.rstrip().endswith("Refund policy")
    holder = next(c for c in chunks if "Refund policy" in c.text)
    assert holder.text.startswith("Refund policy\n\nRefunds are issued")  # no earlier section's overlap before it


def test_a_markdown_heading_on_the_line_above_its_text_counts_as_a_heading():
    chunks = chunk_pages([(1, words(168, "a") + ".\n## Hours\nWe open at nine.")])
    assert chunks[-1].text == "## Hours\n\nWe open at nine."


def test_page_numbers_follow_the_text():
    pages = [(1, words(100, "one") + "."), (2, words(100, "two") + "."), (3, ""), (4, words(100, "four") + ".")]
    chunks = chunk_pages(pages)
    assert (chunks[0].page_start, chunks[0].page_end) == (1, 1)
    assert any(c.page_start == 1 and c.page_end == 2 for c in chunks) or chunks[1].page_start == 2
    assert chunks[-1].page_end == 4
    assert all(c.page_start != 3 for c in chunks)


def test_a_sentence_longer_than_a_chunk_is_cut_between_words():
    chunks = chunk_pages([(1, words(1000))])
    assert all(c.word_count <= MAX_WORDS for c in chunks)
    assert chunks[0].text.split()[0] == "word0" and chunks[-1].text.split()[-1] == "word999"


def test_chunking_is_deterministic_and_empty_input_gives_no_chunks():
    assert chunk_pages(handbook_pages()) == chunk_pages(handbook_pages())
    assert chunk_pages([]) == [] and chunk_pages([(1, "  \n\n ")]) == []


def test_an_overlap_that_leaves_no_room_is_refused():
    with pytest.raises(ValueError):
        chunk_pages([(1, "x")], max_words=60, overlap_words=30)
