"""redact() and the log filter: configured and given secrets, and anything shaped like a
key or token, never reach a message or a log line; identifiers stay readable."""

from __future__ import annotations

import io
import json
import logging
import logging.config

import pytest
from django.conf import settings

from jagcall.kernel.providers import SecretRedactionFilter, redact, register_secret

AUTH_TOKEN = "9f3c2b1a8e7d6c5b4a3f2e1d0c9b8a7f"
ACCOUNT_SID = "AC" + "4d5e6f708192a3b4c5d6e7f8091a2b3c"


@pytest.fixture
def secrets_configured(settings):
    settings.TWILIO_AUTH_TOKEN = "plainletterstoken"  # no digits: only the configured value can catch it
    settings.TWILIO_API_KEY_SECRET = "ApiKeySecretValueWithoutShape"
    settings.OPENAI_API_KEY = "openai-configured-key"
    settings.STRIPE_API_KEY = "stripe-configured-key"  # any *_API_KEY
    return settings


def test_configured_secrets_are_removed(secrets_configured):
    text = (
        "token plainletterstoken, secret ApiKeySecretValueWithoutShape, "
        "keys openai-configured-key stripe-configured-key"
    )
    assert redact(text) == "token [redacted], secret [redacted], keys [redacted] [redacted]"


def test_a_secret_setting_changed_later_is_removed_under_its_new_value(settings):
    # The secret settings are read once per settings object: a change (a new object) is read again.
    settings.TWILIO_AUTH_TOKEN = "firstplainletters"
    assert redact("token firstplainletters") == "token [redacted]"
    settings.TWILIO_AUTH_TOKEN = "secondplainletters"
    assert redact("token secondplainletters, old firstplainletters") == (
        "token [redacted], old firstplainletters"
    )


def test_secrets_given_to_a_builder_are_removed():
    register_secret("organization-own-deepgram-key")
    assert redact("refused organization-own-deepgram-key") == "refused [redacted]"


@pytest.mark.parametrize(
    "text, expected",
    [
        (f"auth token {AUTH_TOKEN}", "auth token [redacted]"),
        (f"account {ACCOUNT_SID} not found", f"account {ACCOUNT_SID} not found"),  # a SID is no secret
        ("CA" + "0a" * 16 + " and PN" + "1b" * 16, "CA" + "0a" * 16 + " and PN" + "1b" * 16),
        ("key sk-proj-AbC123dEf456GhI789jKl0", "key [redacted]"),
        ("key sk-ant-api03-AbC123dEf456GhI789", "key [redacted]"),
        ("key sk_0123456789abcdef0123456789abcdef0123456789abcdef", "key [redacted]"),
        ("Authorization: Token 0123456789abcdef0123456789abcdef01234567", "Authorization: Token [redacted]"),
        ("Bearer AbCdEf0123456789xyz", "Bearer [redacted]"),
        ("redis://:s3cretpass@redis:6379/0", "redis://:[redacted]@redis:6379/0"),
        ('{"api_key": "abc123def", "xi-api-key": "k9k9k9k9"}', '{"api_key": "[redacted]", "xi-api-key": "[redacted]"}'),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc", "jwt [redacted]"),
        ("The 'To' number +15005550001 is not valid", "The 'To' number +15005550001 is not valid"),
        ("token rotated for the account", "token rotated for the account"),
    ],
)
def test_key_shaped_strings_are_removed_and_identifiers_stay(text, expected):
    assert redact(text) == expected


def test_the_console_handler_carries_the_filter():
    assert "redact_secrets" in settings.LOGGING["handlers"]["console"]["filters"]
    factory = settings.LOGGING["filters"]["redact_secrets"]["()"]
    assert factory == "jagcall.kernel.providers.redaction.SecretRedactionFilter"


@pytest.mark.parametrize("formatter", ["json", "text"])
def test_log_lines_carry_no_secret(formatter, secrets_configured):
    stream = io.StringIO()
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": settings.LOGGING["filters"],
        "formatters": settings.LOGGING["formatters"],
        "handlers": {"out": {"class": "logging.StreamHandler", "stream": stream, "formatter": formatter,
                              "filters": ["request_id", "redact_secrets"]}},
        "loggers": {"jagcall.tests.redaction": {"handlers": ["out"], "level": "INFO", "propagate": False}},
    }
    logging.config.dictConfig(config)
    try:
        log = logging.getLogger("jagcall.tests.redaction")
        request_id = "0123456789abcdef0123456789abcdef"
        log.info(
            "calling with %s (request %s)", "openai-configured-key", request_id,
            extra={"auth": "Bearer AbC0123456789xyz"},
        )
        try:
            raise RuntimeError("provider echoed plainletterstoken")
        except RuntimeError:
            log.exception("failed with sk-proj-AbC123dEf456GhI789jKl0")
    finally:
        logging.config.dictConfig(settings.LOGGING)

    output = stream.getvalue()
    for secret in ("openai-configured-key", "plainletterstoken", "AbC0123456789xyz", "sk-proj-AbC123dEf456GhI789jKl0"):
        assert secret not in output
    assert request_id in output  # request ids (32 hex digits) stay readable in logs
    assert "provider echoed [redacted]" in output and "RuntimeError" in output
    if formatter == "json":
        lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        assert lines[0]["auth"] == "Bearer [redacted]"
        assert "provider echoed [redacted]" in lines[1]["exc_info"]


def test_the_filter_leaves_records_without_secrets_alone():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "plain %s", ("message",), None)
    assert SecretRedactionFilter().filter(record) is True
    assert record.getMessage() == "plain message"


def test_a_finalizer_that_logs_during_a_redaction_does_not_hang_the_process():
    """Garbage collection may run an SDK client's __del__ (which logs) while redaction holds its lock."""
    import gc
    import threading

    from jagcall.kernel.providers import redaction

    logger = logging.getLogger("jagcall.tests.finalizer")
    logger.addFilter(redaction.SecretRedactionFilter())

    class LogsWhenCollected:
        def __del__(self):
            logger.warning("closing a connection with sk-live-finalizer1234567890abcdef")

    finished = threading.Event()

    def redact_while_collecting():
        with redaction._registered_lock:  # as _redact and register_secret hold it
            cycle = LogsWhenCollected()
            cycle.me = cycle  # only the cycle collector frees it, at any allocation
            del cycle
            gc.collect()
        finished.set()

    worker = threading.Thread(target=redact_while_collecting, daemon=True)
    worker.start()
    assert finished.wait(10), "logging from a finalizer inside a redaction deadlocked"
