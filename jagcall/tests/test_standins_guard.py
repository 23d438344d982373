"""[!!] The stand-ins never load in production: only with DEBUG on or under the tests."""

from __future__ import annotations

import os
import subprocess
import sys

from django.conf import settings

IMPORT = (
    "import django; from django.conf import settings; settings.configure(DEBUG={debug}); django.setup(); "
    "from jagcall.kernel.standins.twilio import TwilioStandIn; print('imported')"
)


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"JAGCALL_TESTING", "DEBUG", "DJANGO_SETTINGS_MODULE"}}
    return subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, cwd=settings.BASE_DIR, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def test_refused_with_debug_off_outside_the_tests():
    result = _run(IMPORT.format(debug=False))
    assert result.returncode != 0 and "imported" not in result.stdout
    assert "ImproperlyConfigured" in result.stderr and "DEBUG=true or JAGCALL_TESTING=1" in result.stderr


def test_refused_when_settings_are_not_configured():
    result = _run("import jagcall.kernel.standins")
    assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr


def test_loads_in_development_and_under_the_tests():
    assert _run(IMPORT.format(debug=True)).stdout.strip() == "imported"
    assert _run(IMPORT.format(debug=False), JAGCALL_TESTING="1").stdout.strip() == "imported"
