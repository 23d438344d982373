"""Provider settings (jagcall/settings/providers.py): base URLs, timeouts, the public
origin and simulated mode, and what DEBUG off refuses."""

from __future__ import annotations

import json

import pytest

from jagcall.tests.test_settings import PRODUCTION_ENV, run_django

SHOW = (
    "import json; from django.conf import settings as s; print(json.dumps({"
    "'base_urls': s.PROVIDER_BASE_URLS, 'timeout': s.PROVIDER_TIMEOUT_SECONDS, 'retries': s.PROVIDER_MAX_RETRIES,"
    "'public': s.PUBLIC_BASE_URL, 'simulated': s.SIMULATED_PROVIDERS, 'twilio_sid': s.TWILIO_ACCOUNT_SID,"
    "'openai_key': s.OPENAI_API_KEY}))"
)
# A development start that needs no embedded server: DEBUG on, backing services named.
DEVELOPMENT_ENV = {**PRODUCTION_ENV, "DEBUG": "true"}


def settings_with(env: dict, drop=()) -> dict:
    result = run_django(SHOW, env, drop=drop)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def refusal(env: dict, drop=()) -> str:
    result = run_django("print('started')", env, drop=drop)
    assert result.returncode != 0 and "started" not in result.stdout
    assert "ImproperlyConfigured" in result.stderr
    return result.stderr


def test_production_defaults_reach_the_providers_themselves():
    values = settings_with(PRODUCTION_ENV)
    assert values == {
        "base_urls": {}, "timeout": 10, "retries": 2, "public": "https://app.jagcall.example",
        "simulated": False, "twilio_sid": "", "openai_key": "",
    }


def test_base_urls_timeouts_and_credentials_come_from_the_environment():
    values = settings_with({
        **DEVELOPMENT_ENV,
        "PROVIDER_BASE_URLS": (
            "twilio=http://127.0.0.1:9001/, openai=http://127.0.0.1:9002,Deepgram=http://127.0.0.1:9003"
        ),
        "PROVIDER_TIMEOUT_SECONDS": "3", "PROVIDER_MAX_RETRIES": "0",
        "TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "OPENAI_API_KEY": "sk-test-key-from-env",
    })
    assert values["base_urls"] == {
        "twilio": "http://127.0.0.1:9001", "openai": "http://127.0.0.1:9002", "deepgram": "http://127.0.0.1:9003",
    }
    assert (values["timeout"], values["retries"]) == (3, 0)
    assert (values["twilio_sid"], values["openai_key"]) == ("AC" + "1" * 32, "sk-test-key-from-env")
    assert values["simulated"] is False  # a key is set: the real provider is meant


@pytest.mark.parametrize(
    "raw, message",
    [
        ("twilio", "name=url pairs"),
        ("fax=http://127.0.0.1:1", "name=url pairs"),
        ("openai=ftp://127.0.0.1:1", "must be an http(s) URL"),
        ("openai=http://user:pw@127.0.0.1:1", "no credentials"),
        ("openai=http://127.0.0.1:1,openai=http://127.0.0.1:2", "names openai twice"),
    ],
)
def test_malformed_base_urls_are_refused(raw, message):
    assert message in refusal({**DEVELOPMENT_ENV, "PROVIDER_BASE_URLS": raw})


def test_debug_off_refuses_plain_http_base_urls_but_takes_https_ones():
    stderr = refusal({**PRODUCTION_ENV, "PROVIDER_BASE_URLS": "twilio=http://127.0.0.1:9001"})
    assert "PROVIDER_BASE_URLS for twilio is plain http" in stderr
    residency = "elevenlabs=https://api.eu.residency.elevenlabs.io"
    values = settings_with({**PRODUCTION_ENV, "PROVIDER_BASE_URLS": residency})
    assert values["base_urls"] == {"elevenlabs": "https://api.eu.residency.elevenlabs.io"}


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("PROVIDER_TIMEOUT_SECONDS", "0", "PROVIDER_TIMEOUT_SECONDS must be at least 1"),
        ("PROVIDER_TIMEOUT_SECONDS", "soon", "PROVIDER_TIMEOUT_SECONDS must be a whole number"),
        ("PROVIDER_MAX_RETRIES", "-1", "PROVIDER_MAX_RETRIES must be 0 or more"),
    ],
)
def test_bad_timeouts_and_retries_are_refused(name, value, message):
    assert message in refusal({**DEVELOPMENT_ENV, name: value})


def test_public_base_url_must_be_https_with_debug_off():
    stderr = refusal({**PRODUCTION_ENV, "PUBLIC_BASE_URL": "http://app.jagcall.example"})
    assert "PUBLIC_BASE_URL must be https when DEBUG is off" in stderr
    # Unset, it is SITE_URL, which must then be https too.
    assert "taken from SITE_URL" in refusal(PRODUCTION_ENV, drop=["PUBLIC_BASE_URL"])
    values = settings_with({**PRODUCTION_ENV, "SITE_URL": "https://portal.jagcall.example"}, drop=["PUBLIC_BASE_URL"])
    assert values["public"] == "https://portal.jagcall.example"


def test_public_base_url_is_an_origin_and_may_be_http_in_development():
    values = settings_with({**DEVELOPMENT_ENV, "PUBLIC_BASE_URL": "http://127.0.0.1:8000/"}, drop=[])
    assert values["public"] == "http://127.0.0.1:8000"
    values = settings_with(DEVELOPMENT_ENV, drop=["PUBLIC_BASE_URL"])
    assert values["public"] == "http://127.0.0.1:8000"  # SITE_URL's development default
    assert "must be an origin" in refusal({**DEVELOPMENT_ENV, "PUBLIC_BASE_URL": "https://app.jagcall.example/hooks"})
    assert "no credentials, query" in refusal({**DEVELOPMENT_ENV, "PUBLIC_BASE_URL": "https://app.jagcall.example?x=1"})


def test_simulated_mode_is_on_in_development_without_provider_keys():
    assert settings_with(DEVELOPMENT_ENV)["simulated"] is True
    assert settings_with({**DEVELOPMENT_ENV, "DEEPGRAM_API_KEY": "dg-key"})["simulated"] is False
    assert settings_with({**DEVELOPMENT_ENV, "SIMULATED_PROVIDERS": "false"})["simulated"] is False
    forced = {**DEVELOPMENT_ENV, "OPENAI_API_KEY": "sk-x", "SIMULATED_PROVIDERS": "true"}
    assert settings_with(forced)["simulated"] is True


def test_simulated_mode_is_refused_with_debug_off():
    stderr = refusal({**PRODUCTION_ENV, "SIMULATED_PROVIDERS": "true"})
    assert "SIMULATED_PROVIDERS is for development only" in stderr
    assert settings_with({**PRODUCTION_ENV, "SIMULATED_PROVIDERS": "false"})["simulated"] is False
