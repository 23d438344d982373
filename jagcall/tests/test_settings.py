"""Production settings: refuse unsafe starts, pass Django's deploy checks (C2, C6)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

BASE_DIR = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "p9V2x!kq7Lr0Zt4mWn8Bc3Ys6Hd1Fg5Jj0Aa2Ss4Dd6Ff8Gg0Hh2Jj4Kk6Ll8",
    "ALLOWED_HOSTS": "app.jagcall.example",
    "CSRF_TRUSTED_ORIGINS": "https://app.jagcall.example",
    "PUBLIC_BASE_URL": "https://app.jagcall.example",
    "DATABASE_URL": "postgres://jagcall:secret@db.internal.invalid:5432/jagcall",
    "REDIS_URL": "redis://:secret@redis.internal.invalid:6379/0",
    "EMAIL_HOST": "smtp.internal.invalid",
    "ADMIN_URL": "support-7f3a/",
    "JAGCALL_MASTER_KEYSET": (
        '{"primaryKeyId":1723420045,"key":[{"keyData":{"typeUrl":"type.googleapis.com/google.crypto.tink.AesGcmKey",'
        '"value":"GiBbmV0w1G2l4hVUjG3OCuL9JGpOF3jU3hJbb8Go4QtmTA==","keyMaterialType":"SYMMETRIC"},'
        '"status":"ENABLED","keyId":1723420045,"outputPrefixType":"TINK"}]}'
    ),
    "JAGCALL_BLIND_INDEX_KEYS": "v1:Ym9ndXMta2V5LWZvci1zZXR0aW5ncy10ZXN0cy1vbmx5IQ==",
    "TURNSTILE_SITE_KEY": "0x4AAAAAAAsitekey-for-settings-tests",
    "TURNSTILE_SECRET_KEY": "0x4AAAAAAAsecret-for-settings-tests",
    "JWT_SIGNING_KEY": "jwt-signing-key-for-settings-tests-only-0123456789abcdef",
    "AUDIT_DIGEST_SIGNING_KEY": "c2V0dGluZ3MtdGVzdHMtZGlnZXN0LWtleS0zMmJ5dGU=",
}


def run_django(code: str, env_overrides: dict, drop=()) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "JAGCALL_")) and k not in PRODUCTION_ENV}
    env.update(env_overrides)
    for name in drop:
        env.pop(name, None)
    env["DJANGO_SETTINGS_MODULE"] = "jagcall.settings"
    env["JAGCALL_DATA_DIR"] = "/nonexistent/jagcall-must-not-be-used"
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )


def test_check_deploy_passes_with_production_values():
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "JAGCALL_"))}, **PRODUCTION_ENV}
    env["DJANGO_SETTINGS_MODULE"] = "jagcall.settings"
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    "missing",
    [
        "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL", "EMAIL_HOST",
        "JAGCALL_MASTER_KEYSET", "JAGCALL_BLIND_INDEX_KEYS", "TURNSTILE_SITE_KEY", "TURNSTILE_SECRET_KEY",
        "JWT_SIGNING_KEY", "AUDIT_DIGEST_SIGNING_KEY",
    ],
)
def test_debug_off_refuses_to_start_without(missing):
    result = run_django("print('started')", PRODUCTION_ENV, drop=[missing])
    assert result.returncode != 0
    assert "started" not in result.stdout
    assert missing in result.stderr and "ImproperlyConfigured" in result.stderr


def test_a_malformed_audit_digest_key_is_refused():
    result = run_django("print('started')", {**PRODUCTION_ENV, "AUDIT_DIGEST_SIGNING_KEY": "replace-with-python-m-compliance-keygen"})
    assert result.returncode != 0 and "started" not in result.stdout
    assert "AUDIT_DIGEST_SIGNING_KEY must be the base64 of a 32-byte Ed25519 private key" in result.stderr
    assert "python -m compliance.keygen" in result.stderr


def test_the_database_owner_is_a_separate_alias_used_only_by_migrate(tmp_path):
    """DATABASE_URL is the application's role; DATABASE_OWNER_URL (given to the migrate step) the owner's."""
    code = (
        "from django.conf import settings as s; "
        "print(sorted(s.DATABASES), s.MIGRATION_DATABASE, s.DATABASE_APP_ROLE, "
        "s.DATABASES.get('owner', {}).get('USER'), s.DATABASES.get('owner', {}).get('PASSWORD'))"
    )
    result = run_django(code, PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["['default']", "default", "jagcall", "None", "None"]
    password = tmp_path / "owner_password"
    password.write_text("owner-secret\n")
    owner = {"DATABASE_OWNER_URL": "postgres://owner@db.internal.invalid:5432/jagcall", "DATABASE_OWNER_PASSWORD_FILE": str(password)}
    result = run_django(code, {**PRODUCTION_ENV, **owner})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["['default',", "'owner']", "owner", "jagcall", "owner", "owner-secret"]
    result = run_django(code, {**PRODUCTION_ENV, **owner, "DATABASE_OWNER_PASSWORD_FILE": str(tmp_path / "missing")})
    assert result.returncode != 0 and "DATABASE_OWNER_PASSWORD_FILE cannot be read" in result.stderr


def test_debug_off_refuses_a_database_that_is_not_postgresql():
    result = run_django("print('started')", {**PRODUCTION_ENV, "DATABASE_URL": "sqlite:///db.sqlite3"})
    assert result.returncode != 0
    assert "PostgreSQL" in result.stderr


def test_debug_defaults_to_off_and_production_values_are_strict():
    code = (
        "from django.conf import settings as s; "
        "print(s.DEBUG, s.PASSWORD_HASHERS[0], s.SESSION_COOKIE_NAME, s.CSRF_COOKIE_NAME, "
        "s.SESSION_ENGINE, s.SECURE_HSTS_SECONDS, s.AUTH_USER_MODEL, s.LOG_FORMAT)"
    )
    result = run_django(code, PRODUCTION_ENV, drop=["DEBUG"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "False",
        "django.contrib.auth.hashers.Argon2PasswordHasher",
        "__Host-sessionid",
        "__Host-csrftoken",
        "django.contrib.sessions.backends.cache",
        "63072000",
        "accounts.User",
        "json",
    ]


def test_admin_url_comes_from_the_environment():
    code = "from django.urls import reverse; print(reverse('admin:index'))"
    result = run_django(code, PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "/support-7f3a/"


def test_invalid_boolean_is_reported_by_name():
    result = run_django("print('started')", {**PRODUCTION_ENV, "DEBUG": "maybe"})
    assert result.returncode != 0 and "DEBUG must be true or false" in result.stderr


def test_user_model_has_email_login_and_no_username():
    from django.contrib.auth import get_user_model
    from django.core.exceptions import FieldDoesNotExist

    User = get_user_model()
    assert User.USERNAME_FIELD == "email"
    with pytest.raises(FieldDoesNotExist):
        User._meta.get_field("username")
    assert settings.AUTH_USER_MODEL == "accounts.User"


def test_password_rules_need_twelve_characters_and_refuse_common_ones():
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        validate_password("short-pass1")
    with pytest.raises(ValidationError):
        validate_password("password1234")
    validate_password("tangerine orbit lantern")


def test_requests_are_not_wrapped_in_one_transaction():
    assert settings.DATABASES["default"]["ATOMIC_REQUESTS"] is False
