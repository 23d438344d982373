"""A document's text, page by page, or an ``ExtractionError`` that says why not.

PDFs are read by pypdf in a child process (``python -m knowledge.processing.pdf_reader``)
with a time limit and a memory cap: a hostile or broken file can loop, eat memory
or crash the parser, and none of that may reach the process that asked. Every
failure comes back as an ``ExtractionError`` whose ``code`` is one of:

- ``encrypted``: the PDF needs a password;
- ``unreadable``: the file is not a PDF pypdf can read (broken, truncated, crashed the reader);
- ``no_text``: nothing to index: a scan without a text layer, or an empty text file;
- ``timeout``: reading took longer than the limit;
- ``encoding``: a text file that is not UTF-8 (or its declared charset).
"""

from __future__ import annotations

import codecs
import json
import subprocess
import sys
from pathlib import Path

PDF_TIMEOUT_SECONDS = 60.0
# The reader's address-space cap: a decompression bomb fails instead of swapping the host.
PDF_MEMORY_LIMIT_BYTES = 2 * 1024**3

_PROJECT_ROOT = Path(__file__).resolve().parents[2]

MESSAGES = {
    "encrypted": "This PDF is protected by a password. Remove the password and upload it again.",
    "unreadable": "This file could not be read as a PDF. It may be damaged or incomplete.",
    "no_text": "No text could be found in this document. If it is a scan, run text recognition (OCR) on it first.",
    "timeout": "Reading this document took too long. Try splitting it into smaller files.",
    "encoding": "This text file is not UTF-8. Save it as UTF-8 and upload it again.",
}


class ExtractionError(Exception):
    """A document whose text cannot be indexed; ``message`` is fit to show to the person who uploaded it."""

    def __init__(self, code: str, message: str | None = None, *, detail: str = ""):
        self.code = code
        self.message = message or MESSAGES[code]
        self.detail = detail  # for logs only: may quote the parser
        super().__init__(f"{code}: {self.message}" + (f" ({detail})" if detail else ""))


def extract_pdf(data: bytes, *, timeout: float = PDF_TIMEOUT_SECONDS) -> list[tuple[int, str]]:
    """(page_number, text) for every page of the PDF in ``data``, numbered from 1.

    A page whose text cannot be extracted comes back empty; a document where no
    page has any text raises ``no_text`` (or ``unreadable`` when every page failed).
    """
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "knowledge.processing.pdf_reader", str(PDF_MEMORY_LIMIT_BYTES)],
            input=data,
            capture_output=True,
            timeout=timeout,
            cwd=_PROJECT_ROOT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ExtractionError("timeout", detail=f"killed after {timeout:g} s") from exc
    try:
        result = json.loads(completed.stdout)
    except ValueError:
        stderr = completed.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ExtractionError("unreadable", detail=f"reader exited {completed.returncode}: {stderr[-1:] or ''}") from None
    if not result["ok"]:
        raise ExtractionError(result["code"], detail=result.get("detail", ""))
    pages = [(int(number), text) for number, text in result["pages"]]
    if not any(text.strip() for _, text in pages):
        failed = result.get("failed_pages", 0)
        if pages and failed == len(pages):
            raise ExtractionError("unreadable", detail="no page could be read")
        raise ExtractionError("no_text", detail=f"{len(pages)} pages without text")
    return pages


def decode_text(data: bytes, *, charset: str | None = None) -> str:
    """The text of a plain-text or Markdown file: UTF-8 (a BOM is dropped) unless a charset is declared."""
    encoding = "utf-8-sig"
    if charset:
        try:
            encoding = codecs.lookup(charset).name
        except LookupError:
            raise ExtractionError("encoding", f"Unknown character set {charset!r}.") from None
        if encoding == "utf-8":
            encoding = "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        if charset and encoding != "utf-8-sig":
            raise ExtractionError("encoding", f"This text file is not valid {charset}.", detail=str(exc)) from None
        raise ExtractionError("encoding", detail=str(exc)) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def extract_text(data: bytes, *, charset: str | None = None) -> list[tuple[int, str]]:
    """A text file as one page: [(1, text)]."""
    text = decode_text(data, charset=charset)
    if not text.strip():
        raise ExtractionError("no_text", "This file is empty.")
    return [(1, text)]
