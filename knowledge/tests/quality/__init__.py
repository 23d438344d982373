"""The labelled retrieval quality set: documents and questions (see README.md)."""

from __future__ import annotations

import json
from pathlib import Path

FOLDER = Path(__file__).resolve().parent
KINDS = ("paraphrase", "identifier")


def documents() -> list[Path]:
    """The set's documents, in name order."""
    return sorted(path for path in FOLDER.glob("*.md") if path.name != "README.md")


def questions() -> list[dict]:
    """The labelled questions: each a dict with ``question``, ``document`` (a file name), ``passage`` and ``kind``."""
    return json.loads((FOLDER / "questions.json").read_text(encoding="utf-8"))


def normalized(text: str) -> str:
    return " ".join(text.split())


def answers(question: dict, text: str) -> bool:
    """Whether ``text`` (a returned chunk) holds the question's labelled passage."""
    return normalized(question["passage"]) in normalized(text)
