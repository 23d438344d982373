"""Request ids: validated, echoed, and carried into the JSON log lines."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from django.conf import settings
from pythonjsonlogger.json import JsonFormatter

from jagcall.kernel.logging import RequestIdFilter

HEX_ID = re.compile(r"^[0-9a-f]{32}$")


@pytest.mark.parametrize("incoming", ["abcdef12", "req-2026.01_abc", "A" * 128, "0f8fad5b-d9cb-469f-a165-70867728950e"])
def test_a_valid_incoming_request_id_is_echoed(client, incoming):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=incoming)

    assert response["X-Request-ID"] == incoming


@pytest.mark.parametrize(
    "incoming",
    [
        "has spaces in it",
        "A" * 129,  # too long
        "short",  # too short
        "abc12345\nInjected: header",
        "<script>alert(1)</script>",
        "",
    ],
)
def test_an_invalid_incoming_request_id_is_replaced_by_a_fresh_one(client, incoming):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=incoming)

    assert response["X-Request-ID"] != incoming
    assert HEX_ID.match(response["X-Request-ID"]), response["X-Request-ID"]


def test_every_request_without_an_id_gets_its_own(client):
    first = client.get("/healthz")["X-Request-ID"]
    second = client.get("/healthz")["X-Request-ID"]

    assert HEX_ID.match(first) and HEX_ID.match(second)
    assert first != second


@pytest.fixture
def json_log():
    """The "jagcall.request" logger writing through the JSON formatter configured in settings."""
    options = dict(settings.LOGGING["formatters"]["json"])
    assert options.pop("()") == "pythonjsonlogger.json.JsonFormatter"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(**options))
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("jagcall.request")
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)


def _records(stream: io.StringIO) -> list[dict]:
    lines = stream.getvalue().splitlines()
    assert lines, "nothing was logged"
    return [json.loads(line) for line in lines]  # one JSON object per line, or this raises


@pytest.mark.parametrize("incoming", [None, "edge-1234abcd"])
def test_a_request_logs_one_json_line_carrying_its_request_id(client, json_log, incoming):
    headers = {"HTTP_X_REQUEST_ID": incoming} if incoming else {}

    response = client.get("/healthz", **headers)

    records = _records(json_log)
    assert len(records) == 1
    record = records[0]
    assert {"time", "level", "logger", "message", "request_id"} <= record.keys()
    assert record["level"] == "INFO"
    assert record["logger"] == "jagcall.request"
    assert record["message"] == "GET /healthz 200"
    assert record["request_id"] == response["X-Request-ID"]
    if incoming:
        assert record["request_id"] == incoming
    assert record["status"] == 200
    assert record["path"] == "/healthz"
    assert re.match(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", record["time"]), record["time"]


def test_two_requests_log_two_lines_with_their_own_ids(client, json_log):
    first = client.get("/healthz")["X-Request-ID"]
    second = client.get("/healthz")["X-Request-ID"]

    assert [record["request_id"] for record in _records(json_log)] == [first, second]


def test_a_record_outside_a_request_has_the_placeholder_id(json_log):
    logging.getLogger("jagcall.request").info("outside")

    (record,) = _records(json_log)
    assert record["message"] == "outside"
    assert record["request_id"] == "-"


def test_the_console_writes_to_standard_error_as_it_is_at_each_line(monkeypatch):
    """A thread that logs after the standard error it started with was replaced and closed (a test runner's
    capture, a redirected command) writes to the present one: no line lost, no "Logging error"."""
    import threading

    from django.utils.module_loading import import_string

    handler_class = import_string(settings.LOGGING["handlers"]["console"]["class"])
    handler = handler_class()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("jagcall.tests.console")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    first, second = io.StringIO(), io.StringIO()
    reported = []
    monkeypatch.setattr(logging, "raiseExceptions", True)
    monkeypatch.setattr(handler, "handleError", lambda record: reported.append(record.getMessage()))
    try:
        monkeypatch.setattr("sys.stderr", first)
        logger.info("while the first stream is standard error")
        first_text = first.getvalue()
        first.close()
        monkeypatch.setattr("sys.stderr", second)
        late = threading.Thread(target=logger.info, args=("from a thread, after it was closed",))
        late.start()
        late.join()
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    assert first_text == "while the first stream is standard error\n"
    assert second.getvalue() == "from a thread, after it was closed\n"
    assert reported == []
