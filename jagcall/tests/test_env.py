"""The environment reader: each cast accepts what it should and names the variable when it refuses."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from jagcall.kernel.env import env


@pytest.mark.parametrize("raw,expected", [("5", 5.0), ("2.5", 2.5), (" 0.25 ", 0.25)])
def test_float_settings_read_numbers(monkeypatch, raw, expected):
    monkeypatch.setenv("JAGCALL_TEST_SECONDS", raw)
    assert env("JAGCALL_TEST_SECONDS", default=1, cast=float) == expected


@pytest.mark.parametrize("raw", ["five", "nan", "inf", "1,5"])
def test_float_settings_refuse_what_is_not_a_finite_number(monkeypatch, raw):
    monkeypatch.setenv("JAGCALL_TEST_SECONDS", raw)
    with pytest.raises(ImproperlyConfigured, match="JAGCALL_TEST_SECONDS must be"):
        env("JAGCALL_TEST_SECONDS", default=1, cast=float)


def test_unset_float_takes_its_default(monkeypatch):
    monkeypatch.delenv("JAGCALL_TEST_SECONDS", raising=False)
    assert env("JAGCALL_TEST_SECONDS", default=5, cast=float) == 5


def test_stream_auth_timeout_reads_from_the_environment(monkeypatch):
    import importlib

    import jagcall.settings.workers as workers

    monkeypatch.setenv("PROVIDER_STREAM_AUTH_TIMEOUT_SECONDS", "1.5")
    try:
        assert importlib.reload(workers).PROVIDER_STREAM_AUTH_TIMEOUT_SECONDS == 1.5
    finally:
        monkeypatch.delenv("PROVIDER_STREAM_AUTH_TIMEOUT_SECONDS")
        importlib.reload(workers)
