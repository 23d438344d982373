"""What an uploaded file is, decided by its bytes, never by its name or declared type.

``sniff(data)`` answers ``pdf``, ``text`` (UTF-8 plain text or Markdown) or
``refused`` with a reason fit to show: binary files (images, archives, Office
documents, executables) and markup (HTML, XML, SVG), which would be indexed
as tags and scripts rather than what a reader sees.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

PDF = "pdf"
TEXT = "text"
REFUSED = "refused"

# A PDF's header may follow some junk; readers look for it in the first 1024 bytes.
_PDF_HEADER_WINDOW = 1024
# How much of a file the text checks read: enough to judge, bounded for large uploads.
_SNIFF_BYTES = 1024 * 1024
# WHATWG MIME sniffing's HTML patterns, each followed by a space or ">" (plus a few of XML's).
_MARKUP_START = re.compile(
    rb"<(?:!doctype\s+html|html|head|body|script|iframe|h1|div|font|table|a|style|title|b|br|p|!--|\?xml|svg)[\s>/]",
    re.IGNORECASE,
)
_ALLOWED_CONTROLS = {"\t", "\n", "\r", "\f"}


@dataclass(frozen=True)
class Sniffed:
    kind: str  # PDF, TEXT or REFUSED
    reason: str = ""  # why a file is refused, fit to show


def sniff(data: bytes) -> Sniffed:
    if not data:
        return Sniffed(REFUSED, "The file is empty.")
    if b"%PDF-" in data[:_PDF_HEADER_WINDOW]:
        return Sniffed(PDF)

    head = data[:_SNIFF_BYTES]
    if b"\x00" in head:
        return Sniffed(REFUSED, "This is a binary file. Upload a PDF, or a text or Markdown file.")
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        # final only when the whole file was read: a cut through a multi-byte character is fine
        text = decoder.decode(head, final=len(head) == len(data))
    except UnicodeDecodeError:
        return Sniffed(REFUSED, "This file is neither a PDF nor UTF-8 text. Save text files as UTF-8.")
    if _MARKUP_START.match(text.lstrip().encode()[:64]):
        return Sniffed(REFUSED, "Web pages and XML files are not accepted. Upload a PDF, or a text or Markdown file.")
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in _ALLOWED_CONTROLS)
    if controls > max(2, len(text) // 100):
        return Sniffed(REFUSED, "This is a binary file. Upload a PDF, or a text or Markdown file.")
    if not text.strip():
        return Sniffed(REFUSED, "The file holds no text.")
    return Sniffed(TEXT)
