"""The keyword index of a chunk, without its words.

PostgreSQL's full-text search turns text into lexemes (``to_tsvector('english',
...)``: words stemmed, stop words dropped, with their positions). Stored as
they are, those lexemes would give a chunk's words back in the clear. Here
each lexeme is replaced by a keyed hash (HMAC-SHA256 under the blind-index
key, bound to the organization, first 64 bits) before it is stored, and a
question's lexemes are hashed the same way, so matching and ranking work as
usual (equal words, equal hashes; frequencies and positions kept) while the
database holds no word. A stolen database cannot test guesses without the
key, which never lives in it (JAGCALL_BLIND_INDEX_KEYS).

Terms are written under the newest key version and looked up under every
version, as blind indexes are.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from django.db import connection

from jagcall.kernel.crypto.blind_index import _keys

PURPOSE = "knowledge.chunk.terms"
CONFIG = "english"
# 'lexeme':1,4B 'other':2  (a quote inside a lexeme is doubled)
_ENTRY = re.compile(r"'((?:[^']|'')*)'(?::([0-9A-D,]+))?")
# Words longer than this are not words (hashes, base64, URLs): they are not indexed.
MAX_LEXEME_LENGTH = 60


def _term(key: bytes, version: str, organization_id, lexeme: str) -> str:
    digest = hmac.new(key, f"{PURPOSE}|{organization_id}|{lexeme}".encode(), hashlib.sha256).hexdigest()
    return f"{version}{digest[:16]}"


def lexemes(texts: list[str]) -> list[list[tuple[str, str]]]:
    """For each text, its (lexeme, positions) pairs as PostgreSQL's English configuration makes them."""
    if not texts:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT to_tsvector(%s::regconfig, t)::text FROM unnest(%s::text[]) WITH ORDINALITY AS u(t, n) ORDER BY n",
            [CONFIG, texts],
        )
        rows = [row[0] for row in cursor.fetchall()]
    return [
        [(lexeme.replace("''", "'"), positions or "") for lexeme, positions in _ENTRY.findall(row)]
        for row in rows
    ]


def index_terms(texts: list[str], *, organization_id) -> list[str]:
    """The stored form of each text's keyword index: a tsvector literal of hashed lexemes, positions kept."""
    version, key = _keys()[0]
    vectors = []
    for pairs in lexemes(texts):
        entries = [
            f"{_term(key, version, organization_id, lexeme)}" + (f":{positions}" if positions else "")
            for lexeme, positions in pairs
            if len(lexeme) <= MAX_LEXEME_LENGTH
        ]
        vectors.append(" ".join(entries))
    return vectors


def query_terms(text: str, *, organization_id) -> str:
    """A tsquery literal matching chunks that hold any of the question's words (under any key version); '' if none."""
    pairs = lexemes([text])[0] if text.strip() else []
    terms = {
        _term(key, version, organization_id, lexeme)
        for lexeme, _ in pairs
        if len(lexeme) <= MAX_LEXEME_LENGTH
        for version, key in _keys()
    }
    return " | ".join(sorted(terms))


# A word that names something exactly: it holds a digit (PX-4410, 4410, D2740), is a code in capitals
# (BSP-C, HARBOR12), or is a capitalized name inside the question (Elm, Patel).
_WORD = re.compile(r"[\w][\w'.\-/]*", re.UNICODE)


def exact_words(text: str) -> list[str]:
    """The words of a question that name something exactly: what keyword search finds better than meaning.

    Common words are left to the search by meaning: matched by keyword, they would rank any passage
    that repeats them (measured on the labelled set: knowledge/tests/quality).
    """
    words = _WORD.findall(text)
    exact = []
    for position, word in enumerate(words):
        core = word.strip(".'-/")
        if not core:
            continue
        upper = sum(1 for ch in core if ch.isupper())
        if any(ch.isdigit() for ch in core) or upper >= 2 or (position > 0 and core[0].isupper()):
            exact.append(core)
    return exact
