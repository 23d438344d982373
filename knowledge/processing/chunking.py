"""A document's pages cut into overlapping chunks that fit the embedding model.

A chunk holds up to ``MAX_WORDS`` words (about 150-170), so that with English
text it stays within the model's 256-token window; the next chunk repeats the
last sentences of the previous one (up to ``OVERLAP_WORDS``), so an answer that
straddles a boundary is found whole in one of them.

Paragraphs (separated by a blank line) are kept whole when they fit; a longer
paragraph is cut between sentences, and a sentence longer than a chunk between
words. A heading (a short Markdown ``#`` line, or a short line without closing
punctuation standing alone) always stays with the text that follows it, and a
chunk never repeats a previous section's text after a heading. Each chunk
knows the first and last page its text came from. The same pages always give
the same chunks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

MAX_WORDS = 170
MAX_TOKENS = 256
OVERLAP_WORDS = 30
HEADING_MAX_WORDS = 12


@dataclass(frozen=True)
class Chunk:
    ordinal: int  # 0, 1, 2... in document order
    text: str
    page_start: int
    page_end: int
    word_count: int
    token_count: int | None = None  # with [CLS] and [SEP], when chunked with the model's tokenizer


@dataclass(frozen=True)
class _Piece:
    """A sentence (or part of one), a heading, or a whole short paragraph."""

    text: str
    page: int
    paragraph: int  # pieces of one paragraph share this number and are joined by a space
    words: int
    tokens: int  # the model's tokens, without [CLS] and [SEP]; 0 when not counted
    heading: bool = False


_BLANK_LINE = re.compile(r"\n[ \t\f\v]*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=\S)")
_MARKDOWN_HEADING = re.compile(r"^#{1,6}\s+\S")


def chunk_pages(
    pages: list[tuple[int, str]],
    *,
    max_words: int = MAX_WORDS,
    overlap_words: int = OVERLAP_WORDS,
    count_tokens: Callable[[str], int] | None = None,
    max_tokens: int = MAX_TOKENS,
) -> list[Chunk]:
    """Chunks of ``pages``, a list of (page_number, text) in document order.

    With ``count_tokens`` (the model tokenizer's count of a text, with its [CLS] and
    [SEP]: ``get_embedder().count_tokens``) a chunk also stays within ``max_tokens``,
    which words alone cannot promise for text full of numbers, codes and addresses.
    """
    if overlap_words < 0 or max_words - overlap_words < 4 * (HEADING_MAX_WORDS + 1):
        raise ValueError("max_words must leave room for a heading and its text after the overlap")
    if count_tokens is None:
        budget = _Budget(max_words, None, lambda text: 0)
    else:
        budget = _Budget(max_words, max_tokens - 2, lambda text: count_tokens(text) - 2)  # [CLS] and [SEP] once
    units = _units(_paragraphs(pages), budget, overlap_words)

    chunks: list[Chunk] = []
    current: list[_Piece] = []
    fresh = False  # whether `current` holds text no earlier chunk holds
    for unit in units:
        if fresh and not budget.fits(current + unit):
            chunks.append(_chunk(len(chunks), current))
            current = [] if unit[0].heading else _overlap(current, overlap_words)
            if not budget.fits(current + unit):
                current = []
            fresh = False
        current.extend(unit)
        fresh = True
    if fresh:
        chunks.append(_chunk(len(chunks), current))
    return chunks


@dataclass(frozen=True)
class _Budget:
    words: int
    tokens: int | None  # None: not counted
    count: Callable[[str], int]

    def fits(self, pieces: list[_Piece], *, share: float = 1.0, reserve_words: int = 0) -> bool:
        if sum(p.words for p in pieces) > (self.words - reserve_words) * share:
            return False
        return self.tokens is None or sum(p.tokens for p in pieces) <= (self.tokens * (1 - reserve_words / self.words)) * share


def _paragraphs(pages: list[tuple[int, str]]) -> list[tuple[int, str, bool]]:
    """(page, text with its whitespace collapsed, is_heading) for each paragraph, in order."""
    paragraphs = []
    for page_number, text in pages:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        for block in _BLANK_LINE.split(text):
            lines: list[str] = []
            for line in [line.strip() for line in block.split("\n") if line.strip()] + [""]:
                is_markdown_heading = bool(_MARKDOWN_HEADING.match(line)) and len(line.split()) <= HEADING_MAX_WORDS + 1
                if lines and (is_markdown_heading or not line):
                    collapsed = " ".join(" ".join(lines).split())
                    paragraphs.append((page_number, collapsed, len(lines) == 1 and _looks_like_heading(collapsed)))
                    lines = []
                if is_markdown_heading:
                    # A Markdown heading is a paragraph of its own even without blank lines around it.
                    paragraphs.append((page_number, " ".join(line.split()), True))
                elif line:
                    lines.append(line)
    return paragraphs


def _looks_like_heading(line: str) -> bool:
    words = line.split()
    return len(words) <= HEADING_MAX_WORDS and not line.endswith((".", "!", "?", ",", ";", ":", '"', "'"))


def _units(paragraphs: list[tuple[int, str, bool]], budget: _Budget, overlap_words: int) -> list[list[_Piece]]:
    """Groups of pieces that go into one chunk together, each small enough to follow an overlap.

    A group is a paragraph's sentences (all of them when they fit, else a run of
    them) led by the headings just before it. Headings take at most a quarter of
    the room and a sentence piece the rest, so a heading always fits with what follows.
    """
    units: list[list[_Piece]] = []
    headings: list[_Piece] = []
    for number, (page, text, heading) in enumerate(paragraphs):
        if heading:
            piece = _Piece(text, page, number, len(text.split()), budget.count(text), heading=True)
            if headings and not budget.fits(headings + [piece], share=0.25, reserve_words=overlap_words):
                units.append(headings)  # a run of heading-like lines (a table of contents) stands alone
                headings = []
            headings.append(piece)
            continue
        group, headings = headings, []
        for piece in _sentences(text, page, number, budget, overlap_words):
            if any(not p.heading for p in group) and not budget.fits(group + [piece], reserve_words=overlap_words):
                units.append(group)
                group = []
            group.append(piece)
        units.append(group)
    if headings:  # headings at the very end, with nothing after them
        units.append(headings)
    return units


def _sentences(text: str, page: int, paragraph: int, budget: _Budget, overlap_words: int) -> list[_Piece]:
    """The sentences of a paragraph; one too long to share a chunk with a heading is cut between words."""
    pieces = []
    pending = [sentence.split() for sentence in _SENTENCE_END.split(text)]
    while pending:
        words = pending.pop(0)
        joined = " ".join(words)
        piece = _Piece(joined, page, paragraph, len(words), budget.count(joined))
        if len(words) > 1 and not budget.fits([piece], share=0.75, reserve_words=overlap_words):
            half = len(words) // 2
            pending[:0] = [words[:half], words[half:]]
            continue
        pieces.append(piece)
    return pieces


def _overlap(pieces: list[_Piece], overlap_words: int) -> list[_Piece]:
    """The last whole sentences of ``pieces`` that fit in ``overlap_words`` (none after a heading)."""
    tail: list[_Piece] = []
    total = 0
    for piece in reversed(pieces):
        if piece.heading or total + piece.words > overlap_words:
            break
        tail.insert(0, piece)
        total += piece.words
    return tail


def _chunk(ordinal: int, pieces: list[_Piece]) -> Chunk:
    parts: list[str] = []
    previous: _Piece | None = None
    for piece in pieces:
        if previous is not None:
            parts.append(" " if piece.paragraph == previous.paragraph else "\n\n")
        parts.append(piece.text)
        previous = piece
    return Chunk(
        ordinal=ordinal,
        text="".join(parts),
        page_start=min(p.page for p in pieces),
        page_end=max(p.page for p in pieces),
        word_count=sum(p.words for p in pieces),
        token_count=sum(p.tokens for p in pieces) + 2 if any(p.tokens for p in pieces) else None,
    )
