"""What a file is, by its bytes: PDF, UTF-8 text, or refused with a reason; the name plays no part."""

import zlib

import pytest

from knowledge.processing.sniffing import PDF, REFUSED, TEXT, sniff
from knowledge.tests.pdfs import text_pdf


def test_a_pdf_is_known_by_its_header_even_after_some_junk():
    assert sniff(text_pdf([["hello"]])).kind == PDF
    assert sniff(b"\r\n junk from a mail gateway \r\n%PDF-1.4\n...").kind == PDF


@pytest.mark.parametrize(
    "data",
    ["Plain notes.\nSecond line.".encode(), "# Menu\n\n* Soupe à l'oignon — 7 €\n".encode(), "\ufeffBOM first".encode(),
     "Ünïcödé ".encode() * 1000],
)
def test_utf8_text_and_markdown_are_text(data):
    assert sniff(data).kind == TEXT


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        b"PK\x03\x04\x14\x00\x06\x00word/document.xml",
        b"\x7fELF\x02\x01\x01\x00",
        zlib.compress(b"x" * 1000),
        "Café".encode("latin-1"),
        b"",
        b"   \n\n",
        b"\x01\x02\x03\x04\x05 mostly control characters \x06\x07\x08",
    ],
    ids=["png", "docx", "elf", "zlib", "latin-1", "empty", "blank", "controls"],
)
def test_binary_and_undecodable_files_are_refused(data):
    result = sniff(data)
    assert result.kind == REFUSED
    assert result.reason


@pytest.mark.parametrize(
    "data",
    [b"<!DOCTYPE html><html><body>x</body></html>", b"  \n<html lang='en'>", b"<?xml version='1.0'?><a/>",
     b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", b"<script>alert(1)</script>"],
)
def test_html_and_xml_are_refused(data):
    assert sniff(data).kind == REFUSED


def test_markdown_that_mentions_tags_later_is_still_text():
    assert sniff(b"How to embed: use a <div> element.\n\n<p>example</p>").kind == TEXT
