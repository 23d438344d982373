"""The settings every topic module starts from: DEBUG, the data directory, the
production guard, and the secrets and hosts."""

from __future__ import annotations

import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from jagcall.kernel.env import env, is_set

# jagcall/settings/core.py -> the project root is three levels up.
BASE_DIR = Path(__file__).resolve().parent.parent.parent

# [!!] DEBUG is off unless asked for; production never runs with it.
DEBUG = env("DEBUG", default=False, cast=bool)
TESTING = env("JAGCALL_TESTING", default=False, cast=bool)
EMBEDDED_SERVICES_ALLOWED = DEBUG or TESTING
DATA_DIR = Path(env("JAGCALL_DATA_DIR", default=str(BASE_DIR / ".data"))).resolve()


def _require_in_production(name: str) -> None:
    if not EMBEDDED_SERVICES_ALLOWED and not is_set(name):
        raise ImproperlyConfigured(
            f"{name} is required when DEBUG is off. Set it in the environment "
            f"(see README.md, Configuration), or set DEBUG=true for local development."
        )


def _development_secret(name: str, make) -> str:
    """A secret kept in DATA_DIR/<name> (owner-only), made on first use. Development and tests only."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = DATA_DIR / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


# --- secrets and hosts ---------------------------------------------------
_require_in_production("SECRET_KEY")
if is_set("SECRET_KEY"):
    SECRET_KEY = env("SECRET_KEY")
else:
    SECRET_KEY = _development_secret("secret_key", lambda: secrets.token_urlsafe(64))
SECRET_KEY_FALLBACKS = env("SECRET_KEY_FALLBACKS", default=[], cast=list)

_require_in_production("ALLOWED_HOSTS")
ALLOWED_HOSTS = env("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"], cast=list)
CSRF_TRUSTED_ORIGINS = env("CSRF_TRUSTED_ORIGINS", default=[], cast=list)
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
