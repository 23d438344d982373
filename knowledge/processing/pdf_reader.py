"""The PDF reader's child process: PDF bytes on stdin, one JSON object on stdout.

Run by ``extraction.extract_pdf`` as ``python -m knowledge.processing.pdf_reader
<memory limit in bytes>``; never imported by the web or worker processes. It
answers ``{"ok": true, "pages": [[1, "text"], ...], "failed_pages": n}`` or
``{"ok": false, "code": "encrypted" | "unreadable", "detail": "..."}``.
"""

from __future__ import annotations

import io
import json
import logging
import sys


def _limit_memory(limit: int) -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):  # not Linux, or a lower hard limit already
        pass


def read(data: bytes) -> dict:
    from pypdf import PasswordType, PdfReader
    from pypdf.errors import DependencyError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
    except Exception as exc:  # pypdf raises PdfReadError, ValueError, KeyError... on broken files
        return {"ok": False, "code": "unreadable", "detail": f"{type(exc).__name__}: {exc}"[:300]}

    try:
        if reader.is_encrypted:
            # Many PDFs are encrypted with an empty user password (only printing or copying is
            # restricted); those open without one. Anything else needs the owner's password.
            if reader.decrypt("") == PasswordType.NOT_DECRYPTED:
                return {"ok": False, "code": "encrypted", "detail": "a user password is set"}
        page_count = len(reader.pages)
    except DependencyError as exc:  # an AES file and no cryptography library
        return {"ok": False, "code": "encrypted", "detail": f"DependencyError: {exc}"[:300]}
    except Exception as exc:
        return {"ok": False, "code": "unreadable", "detail": f"{type(exc).__name__}: {exc}"[:300]}

    pages = []
    failed = 0
    for index in range(page_count):
        try:
            text = reader.pages[index].extract_text() or ""
        except Exception:  # one broken content stream (often a plain ValueError) costs only its page
            text = ""
            failed += 1
        pages.append([index + 1, text])
    return {"ok": True, "pages": pages, "failed_pages": failed}


def main() -> None:
    if len(sys.argv) > 1:
        _limit_memory(int(sys.argv[1]))
    logging.disable(logging.WARNING)  # pypdf warns on every oddity of a file; the caller only needs the outcome
    data = sys.stdin.buffer.read()
    try:
        result = read(data)
    except MemoryError:
        result = {"ok": False, "code": "unreadable", "detail": "MemoryError"}
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
