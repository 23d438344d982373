"""PDFs made in the tests: text-bearing pages written by hand, then pypdf for blank, encrypted and broken ones."""

from __future__ import annotations

import io
import zlib


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def text_pdf(pages: list[list[str]], *, compress: bool = True) -> bytes:
    """A PDF with one page per item of ``pages``, each a list of lines in Helvetica 11 pt."""
    objects: list[bytes] = []  # object n is objects[n - 1]
    page_ids = []
    font_id = 3
    objects.append(b"")  # 1: catalog, filled in below
    objects.append(b"")  # 2: page tree
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    for lines in pages:
        ops = ["BT", "/F1 11 Tf", "13 TL", "56 780 Td"]
        for line in lines:
            ops.append(f"({_escape(line)}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("cp1252", "replace")
        if compress:
            body = zlib.compress(stream)
            objects.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(body) + body + b"\nendstream")
        else:
            objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        content_id = len(objects)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 %d 0 R >> >> "
            b"/Contents %d 0 R >>" % (font_id, content_id)
        )
        page_ids.append(len(objects))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    kids = b" ".join(b"%d 0 R" % i for i in page_ids)
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(page_ids))

    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def blank_pdf(pages: int = 2) -> bytes:
    """Pages without any text, as a scan without a text layer reads."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def encrypted_pdf(data: bytes, *, user_password: str = "secret", algorithm: str = "AES-256") -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm=algorithm)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def broken_stream_pdf(pages: int = 2, *, intact: tuple[int, ...] = ()) -> bytes:
    """A well-formed PDF whose page content streams claim Flate but hold garbage (but the pages in ``intact``, from 1)."""
    data = text_pdf([[f"intact page {n}"] for n in range(1, pages + 1)], compress=True)
    marker = b"/Filter /FlateDecode >>\nstream\n"
    parts = data.split(marker)
    rebuilt = [parts[0]]
    for number, part in enumerate(parts[1:], start=1):
        if number in intact:
            rebuilt.append(part)
            continue
        length = part.index(b"\nendstream")
        rebuilt.append(b"\xde\xad\xbe\xef" * (length // 4) + b"\x00" * (length % 4) + part[length:])
    return marker.join(rebuilt)
