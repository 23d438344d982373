"""Reading a document's text: every bad file ends in an ExtractionError with a code, never a crash."""

import pytest

from knowledge.processing.extraction import ExtractionError, decode_text, extract_pdf, extract_text
from knowledge.tests.pdfs import blank_pdf, broken_stream_pdf, encrypted_pdf, text_pdf


def codes(call):
    with pytest.raises(ExtractionError) as caught:
        call()
    assert caught.value.message  # something to show to the person who uploaded it
    return caught.value.code


def test_a_text_pdf_reads_page_by_page():
    data = text_pdf([["Refunds are issued within 14 days.", "Keep your receipt (paper or email)."], ["Opening hours: 9 to 5."]])
    pages = extract_pdf(data)
    assert [number for number, _ in pages] == [1, 2]
    assert "Refunds are issued within 14 days." in pages[0][1]
    assert "Keep your receipt (paper or email)." in pages[0][1]
    assert "Opening hours: 9 to 5." in pages[1][1]


def test_a_pdf_that_needs_a_password_is_refused_as_encrypted():
    data = text_pdf([["Confidential price list."]])
    assert codes(lambda: extract_pdf(encrypted_pdf(data))) == "encrypted"
    assert codes(lambda: extract_pdf(encrypted_pdf(data, algorithm="RC4-128"))) == "encrypted"


def test_a_pdf_encrypted_without_a_user_password_opens():
    pages = extract_pdf(encrypted_pdf(text_pdf([["Printing restricted only."]]), user_password=""))
    assert "Printing restricted only." in pages[0][1]


@pytest.mark.parametrize(
    "data",
    [b"%PDF-1.7\nnot really a pdf at all", text_pdf([["cut short"]])[:150], b"%PDF-1.4\n" + bytes(range(256)) * 40],
    ids=["garbage", "truncated", "binary"],
)
def test_a_broken_pdf_is_unreadable(data):
    assert codes(lambda: extract_pdf(data)) == "unreadable"


def test_a_scan_without_a_text_layer_has_no_text():
    assert codes(lambda: extract_pdf(blank_pdf(3))) == "no_text"


def test_a_broken_page_stream_costs_only_its_page():
    pages = extract_pdf(broken_stream_pdf(3, intact=(2,)))
    assert [number for number, _ in pages] == [1, 2, 3]
    assert pages[0][1].strip() == "" and pages[2][1].strip() == ""
    assert "intact page 2" in pages[1][1]


def test_a_pdf_reader_that_runs_too_long_is_stopped():
    assert codes(lambda: extract_pdf(text_pdf([["slow"]]), timeout=0.001)) == "timeout"


def test_text_files_decode_as_utf8_with_or_without_a_bom():
    assert decode_text("Café\r\nnext".encode()) == "Café\nnext"
    assert decode_text(b"\xef\xbb\xbfhello") == "hello"
    assert extract_text("# Title\n\nBody".encode()) == [(1, "# Title\n\nBody")]


def test_a_declared_charset_is_honoured():
    assert decode_text("Café".encode("latin-1"), charset="ISO-8859-1") == "Café"


def test_text_that_is_not_utf8_or_an_unknown_charset_is_refused():
    assert codes(lambda: decode_text("Café".encode("latin-1"))) == "encoding"
    assert codes(lambda: decode_text(b"abc", charset="no-such-charset")) == "encoding"


def test_an_empty_text_file_has_no_text():
    assert codes(lambda: extract_text(b"  \n\n ")) == "no_text"
