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


def test_the_console_moves_to_the_present_standard_error_once_its_own_is_closed(monkeypatch):
    """A thread that logs after the standard error the console was configured with was replaced and closed (a
    test runner's capture) writes to the present one: no line lost, no "Logging error". A replacement that is
    still open is not followed (Celery's worker replaces standard error with a proxy into logging)."""
    import threading

    from django.utils.module_loading import import_string

    handler_class = import_string(settings.LOGGING["handlers"]["console"]["class"])
    configured, proxy, present = io.StringIO(), io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stderr", configured)
    handler = handler_class()  # as logging is configured at start-up
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("jagcall.tests.console")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    reported = []
    monkeypatch.setattr(handler, "handleError", lambda record: reported.append(record.getMessage()))
    try:
        monkeypatch.setattr("sys.stderr", proxy)
        logger.info("while the configured stream is open")
        configured_text = configured.getvalue()
        configured.close()
        monkeypatch.setattr("sys.stderr", present)
        late = threading.Thread(target=logger.info, args=("from a thread, after it was closed",))
        late.start()
        late.join()
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    assert configured_text == "while the configured stream is open\n"
    assert proxy.getvalue() == ""
    assert present.getvalue() == "from a thread, after it was closed\n"
    assert reported == []
