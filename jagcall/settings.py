"""JagCall settings: one module, every value from the environment.

Development needs nothing set: with DEBUG on, the project starts its own
PostgreSQL + pgvector and Redis under .data/ (jagcall/kernel/embedded.py) and keeps
a generated SECRET_KEY there. With DEBUG off (the default) it refuses to
start without SECRET_KEY, ALLOWED_HOSTS, DATABASE_URL, REDIS_URL and
EMAIL_HOST.
Every variable is listed in README.md.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from jagcall.kernel.env import env, is_set

BASE_DIR = Path(__file__).resolve().parent.parent

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

# --- backing services ----------------------------------------------------
_require_in_production("DATABASE_URL")
_require_in_production("REDIS_URL")
EMBEDDED_POSTGRES_STARTED = EMBEDDED_REDIS_STARTED = False
if is_set("DATABASE_URL"):
    DATABASE_URL = env("DATABASE_URL")
else:
    from jagcall.kernel.embedded import EmbeddedPostgres

    _pg = EmbeddedPostgres(DATA_DIR / "pg")
    EMBEDDED_POSTGRES_STARTED = _pg.ensure_running()
    DATABASE_URL = _pg.url()
if is_set("REDIS_URL"):
    REDIS_URL = env("REDIS_URL")
else:
    from jagcall.kernel.embedded import EmbeddedRedis

    _redis = EmbeddedRedis(DATA_DIR / "redis")
    EMBEDDED_REDIS_STARTED = _redis.ensure_running()
    REDIS_URL = _redis.url()

if not DATABASE_URL.startswith(("postgres://", "postgresql://")):
    raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL (postgres://...); no other database is supported.")

DATABASES = {
    "default": {
        **dj_database_url.parse(DATABASE_URL, conn_max_age=env("DB_CONN_MAX_AGE", default=60, cast=int)),
        "ATOMIC_REQUESTS": False,  # services own their transactions (STYLE.md #3)
        "CONN_HEALTH_CHECKS": True,
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def redis_url_for_db(url: str, db: int) -> str:
    """The same Redis server, another logical database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


REDIS_DB_OFFSET = env("REDIS_DB_OFFSET", default=0, cast=int)
REDIS_CACHE_URL = redis_url_for_db(REDIS_URL, REDIS_DB_OFFSET + 0)
REDIS_BROKER_URL = redis_url_for_db(REDIS_URL, REDIS_DB_OFFSET + 1)
REDIS_CHANNELS_URL = redis_url_for_db(REDIS_URL, REDIS_DB_OFFSET + 2)

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_CACHE_URL,
        "KEY_PREFIX": "jc",
        "TIMEOUT": 300,
    },
}

# Sessions live in Redis (C25): the cache backend, on the same server.
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
SESSION_CACHE_ALIAS = "default"
SESSION_COOKIE_AGE = env("SESSION_COOKIE_AGE", default=60 * 60 * 12, cast=int)
SESSION_IDLE_TIMEOUT = env("SESSION_IDLE_TIMEOUT", default=60 * 60 * 2, cast=int)
SESSION_ABSOLUTE_TIMEOUT = env("SESSION_ABSOLUTE_TIMEOUT", default=SESSION_COOKIE_AGE, cast=int)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

# --- encryption keys (jagcall/kernel/crypto, docs/security/encryption.md) -------------
# The master keyset wraps every organization's data keysets. Give exactly one:
# a Tink AES256_GCM keyset as JSON, a file holding it, or a KMS key URI.
JAGCALL_MASTER_KEYSET = env("JAGCALL_MASTER_KEYSET", default="")
JAGCALL_MASTER_KEYSET_FILE = env("JAGCALL_MASTER_KEYSET_FILE", default="")
JAGCALL_MASTER_KEY_URI = env("JAGCALL_MASTER_KEY_URI", default="")
JAGCALL_KMS_CREDENTIALS_FILE = env("JAGCALL_KMS_CREDENTIALS_FILE", default="")
# Blind-index keys (keyed HMAC for exact lookups of encrypted values):
# "v2:<base64 32 bytes>,v1:<base64 32 bytes>", newest first.
JAGCALL_BLIND_INDEX_KEYS = env("JAGCALL_BLIND_INDEX_KEYS", default="")
JAGCALL_KEY_CACHE_SECONDS = env("JAGCALL_KEY_CACHE_SECONDS", default=60, cast=int)
_master_sources = [bool(JAGCALL_MASTER_KEYSET), bool(JAGCALL_MASTER_KEYSET_FILE), bool(JAGCALL_MASTER_KEY_URI)]
if sum(_master_sources) > 1:
    raise ImproperlyConfigured(
        "Set only one of JAGCALL_MASTER_KEYSET, JAGCALL_MASTER_KEYSET_FILE and JAGCALL_MASTER_KEY_URI."
    )
# In development the keys are generated under DATA_DIR on first use.
JAGCALL_GENERATE_DEV_KEYS = EMBEDDED_SERVICES_ALLOWED and not any(_master_sources)
if not EMBEDDED_SERVICES_ALLOWED and not any(_master_sources):
    raise ImproperlyConfigured(
        "A master keyset is required when DEBUG is off: set JAGCALL_MASTER_KEYSET (Tink JSON), "
        "JAGCALL_MASTER_KEYSET_FILE or JAGCALL_MASTER_KEY_URI. Make one with "
        "`python -m jagcall.kernel.crypto.keygen master` (see docs/security/encryption.md)."
    )
if JAGCALL_GENERATE_DEV_KEYS:
    JAGCALL_MASTER_KEYSET_FILE = str(DATA_DIR / "master_keyset.json")
_require_in_production("JAGCALL_BLIND_INDEX_KEYS")
if not JAGCALL_BLIND_INDEX_KEYS and EMBEDDED_SERVICES_ALLOWED:
    import base64 as _b64

    JAGCALL_BLIND_INDEX_KEYS = _development_secret(
        "blind_index_keys", lambda: "v1:" + _b64.b64encode(secrets.token_bytes(32)).decode()
    )

# --- applications ---------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django.contrib.humanize",
    "channels",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "django_htmx",
    "django_ratelimit",
    "jagcall.kernel.crypto",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.usersessions",
    "accounts",
    "auditlog",  # only its model diff, behind compliance.services (compliance/diff.py); it records nothing itself
    "compliance",
]

MIDDLEWARE = [
    "jagcall.kernel.logging.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "allauth.usersessions.middleware.UserSessionsMiddleware",
    "accounts.middleware.SessionTimeoutMiddleware",
    "accounts.middleware.BackOfficeTwoFactorMiddleware",
    "accounts.ratelimits.SensitiveRateLimitMiddleware",
    "compliance.middleware.AuditDenialsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "jagcall.kernel.api.throttling.RateLimitHeadersMiddleware",
]

ROOT_URLCONF = "jagcall.urls"
ASGI_APPLICATION = "jagcall.asgi.application"
WSGI_APPLICATION = "jagcall.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.portal",
                "accounts.context_processors.turnstile",
            ],
        },
    },
]

# --- identity ---------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "accounts:home"
LOGOUT_REDIRECT_URL = "account_login"
LOGIN_URL_PATH = "/auth/login/"
AUTHENTICATION_BACKENDS = [
    "allauth.account.auth_backends.AuthenticationBackend",
]
# Account flows (django-allauth): email is the login, no usernames.
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
ACCOUNT_FORMS = {"signup": "accounts.forms.SignupForm"}
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_UNIQUE_EMAIL = True
# Verification comes before anything else (so before anything that costs money
# or sends messages). Mandatory verification is also what lets registration
# answer the same way whether or not the address already has an account.
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_SESSION_REMEMBER = None
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = "JagCall: "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "http" if DEBUG or TESTING else "https"
# Brute force: failed logins per IP and per account, in Redis (the cache).
ACCOUNT_RATE_LIMITS = {
    "login_failed": env("RATE_LIMIT_LOGIN_FAILED", default="20/m/ip,5/5m/key"),
    "login": "30/m/ip",
    "signup": env("RATE_LIMIT_SIGNUP", default="10/m/ip"),
    "reset_password": "20/m/ip,3/m/key",
    "reset_password_from_key": "20/m/ip",
    "confirm_email": "1/3m/key",
}
# Per client IP on the sensitive pages, before their views run (accounts/ratelimits.py,
# django-ratelimit). Above these a request gets 429 with Retry-After.
SENSITIVE_RATE_LIMITS = {
    "default": env("RATE_LIMIT_SENSITIVE", default="30/m"),
    "mfa_authenticate": "10/m",
    "mfa_reauthenticate": "10/m",
    "account_reset_password_from_key": "20/m",
    "account_confirm_email": "20/m",
    "accounts:invitation-accept": "20/m",
}
RATELIMIT_USE_CACHE = "default"
RATELIMIT_FAIL_OPEN = False
# django-ratelimit lists only third-party Redis backends; Django's own RedisCache does what it
# needs atomically in Redis (add = SET NX with expiry, incr = INCRBY), as accounts/tests/test_ratelimits.py shows.
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"]
USERSESSIONS_TRACK_ACTIVITY = True
ACCOUNT_EMAIL_NOTIFICATIONS = True  # a factor enabled/removed, password changed: the person is told
# Two-factor (allauth MFA, one device store for portal, back office and API tokens).
MFA_ADAPTER = "accounts.mfa.MFAAdapter"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
MFA_TOTP_PERIOD = 30
MFA_TOTP_TOLERANCE = 1  # the previous and next 30 s step are accepted
MFA_RECOVERY_CODE_COUNT = 10
MFA_RECOVERY_CODE_DIGITS = 34  # ~113 bits per code
MFA_RECOVERY_CODES_SHOW_ONCE = True
MFA_PASSKEY_LOGIN_ENABLED = False  # passkeys are a second factor here, not a password replacement
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = DEBUG or TESTING  # plain-HTTP localhost in development only
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PASSWORD_RESET_TIMEOUT = 60 * 60
INVITATION_TTL_HOURS = env("INVITATION_TTL_HOURS", default=72, cast=int)

# --- audit log (compliance/, docs/security/audit.md) ------------------------------
# Events older than this are purged daily, leaving a checkpoint so the hash chain still verifies.
AUDIT_RETENTION_DAYS = env("AUDIT_RETENTION_DAYS", default=365, cast=int)
if AUDIT_RETENTION_DAYS < 1:
    raise ImproperlyConfigured("AUDIT_RETENTION_DAYS must be at least 1.")

# --- Cloudflare Turnstile on registration (C26) ---------------------------
TURNSTILE_SITE_KEY = env("TURNSTILE_SITE_KEY", default="")
TURNSTILE_SECRET_KEY = env("TURNSTILE_SECRET_KEY", default="")
TURNSTILE_VERIFY_URL = env("TURNSTILE_VERIFY_URL", default="https://challenges.cloudflare.com/turnstile/v0/siteverify")
TURNSTILE_SCRIPT_URL = env("TURNSTILE_SCRIPT_URL", default="https://challenges.cloudflare.com/turnstile/v0/api.js")
TURNSTILE_TIMEOUT_SECONDS = env("TURNSTILE_TIMEOUT_SECONDS", default=5, cast=int)
# With DEBUG on and no keys the widget is off (the signup page says so).
TURNSTILE_ENABLED = bool(TURNSTILE_SITE_KEY and TURNSTILE_SECRET_KEY)
if not EMBEDDED_SERVICES_ALLOWED and not TURNSTILE_ENABLED:
    raise ImproperlyConfigured(
        "TURNSTILE_SITE_KEY and TURNSTILE_SECRET_KEY are required when DEBUG is off (registration is protected by Turnstile)."
    )

# --- internationalisation -------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- static and uploaded files --------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(DATA_DIR / "media")))
MEDIA_URL = "/media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or TESTING
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# Where encrypted files (recordings, uploads) are kept, as ciphertext. In
# production point it at S3-compatible storage through django-storages, e.g.
# {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {"bucket_name": ...}}.
JAGCALL_ENCRYPTED_FILES_STORAGE = {
    "BACKEND": "django.core.files.storage.FileSystemStorage",
    "OPTIONS": {"location": str(MEDIA_ROOT / "private")},
}
# 20 MB uploads (C19); nginx enforces the same ceiling.
DATA_UPLOAD_MAX_MEMORY_SIZE = 20 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# --- email -------------------------------------------------------------------
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="JagCall <no-reply@jagcall.localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
if is_set("EMAIL_HOST"):
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = env("EMAIL_HOST")
    EMAIL_PORT = env("EMAIL_PORT", default=587, cast=int)
    EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
    EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
    EMAIL_USE_TLS = env("EMAIL_USE_TLS", default=True, cast=bool)
    EMAIL_TIMEOUT = 10
elif EMBEDDED_SERVICES_ALLOWED:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
else:
    raise ImproperlyConfigured("EMAIL_HOST is required when DEBUG is off (invitations are sent by email).")

# --- admin -------------------------------------------------------------------
ADMIN_URL = env("ADMIN_URL", default="admin/")
if not ADMIN_URL.endswith("/") or ADMIN_URL.startswith("/"):
    raise ImproperlyConfigured("ADMIN_URL must be a relative path ending in '/', e.g. 'support-7f3a/'.")

# --- security headers and cookies ---------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if DEBUG:
    SESSION_COOKIE_NAME = "jagcall_session"
    CSRF_COOKIE_NAME = "jagcall_csrftoken"
else:
    # [!!] __Host- cookies: Secure, no Domain, Path=/ (ASVS 3.3.1).
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env("SECURE_SSL_REDIRECT", default=True, cast=bool)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SECURE_HSTS_SECONDS = env("SECURE_HSTS_SECONDS", default=63072000, cast=int)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True, cast=bool)
    SECURE_HSTS_PRELOAD = env("SECURE_HSTS_PRELOAD", default=True, cast=bool)
if env("TRUST_X_FORWARDED_PROTO", default=False, cast=bool):
    # Only behind the shipped nginx, which overwrites the header.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- JWT for the API (djangorestframework-simplejwt) ----------------------------
# [!!] A key of its own, never SECRET_KEY; audience and issuer are checked.
_require_in_production("JWT_SIGNING_KEY")
if is_set("JWT_SIGNING_KEY"):
    JWT_SIGNING_KEY = env("JWT_SIGNING_KEY")
else:
    JWT_SIGNING_KEY = _development_secret("jwt_signing_key", lambda: secrets.token_urlsafe(64))
if len(JWT_SIGNING_KEY) < 32 or JWT_SIGNING_KEY == SECRET_KEY:
    raise ImproperlyConfigured("JWT_SIGNING_KEY must be at least 32 characters and differ from SECRET_KEY.")
SIMPLE_JWT = {
    "ALGORITHM": "HS256",
    "SIGNING_KEY": JWT_SIGNING_KEY,
    "VERIFYING_KEY": None,
    "AUDIENCE": env("JWT_AUDIENCE", default="jagcall-api"),
    "ISSUER": env("JWT_ISSUER", default=SITE_URL),
    "ACCESS_TOKEN_LIFETIME": __import__("datetime").timedelta(minutes=15),
    "REFRESH_TOKEN_LIFETIME": __import__("datetime").timedelta(days=env("JWT_REFRESH_DAYS", default=7, cast=int)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "sub",
    "LEEWAY": 0,
}

# --- OAuth 2.0 authorization server (django-oauth-toolkit; accounts/oauth/, docs/api.md) -------------
# Authorization code with PKCE (S256) only; tokens bound to the organization chosen at
# consent, stored as SHA-256 only. Every RFC 9700 gate of the toolkit is on.
INSTALLED_APPS = [*INSTALLED_APPS, "oauth2_provider", "accounts.oauth"]
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth.Application"
OAUTH2_PROVIDER_GRANT_MODEL = "oauth.Grant"
OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL = "oauth.AccessToken"
OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL = "oauth.RefreshToken"
OAUTH2_PROVIDER_ID_TOKEN_MODEL = "oauth.IDToken"
OAUTH2_PROVIDER = {
    "OAUTH2_SERVER_CLASS": "accounts.oauth.server.AuthorizationCodeServer",
    "OAUTH2_VALIDATOR_CLASS": "accounts.oauth.validators.OrganizationOAuth2Validator",
    "SCOPES_BACKEND_CLASS": "accounts.oauth.scopes.RegistryScopes",
    "SCOPES": {"organization:read": "Read the organization's details"},  # unused: the backend reads accounts/scopes.py
    "ACCESS_TOKEN_GENERATOR": "accounts.oauth.tokens.generate_access_token",
    "REFRESH_TOKEN_GENERATOR": "accounts.oauth.tokens.generate_refresh_token",
    "CLIENT_SECRET_GENERATOR_CLASS": "accounts.oauth.tokens.ClientSecretGenerator",
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": 600,
    "ACCESS_TOKEN_EXPIRE_SECONDS": 60 * 60,
    # Absolute: a refresh chain ends 30 days after the code was exchanged (accounts/oauth/validators.py).
    "REFRESH_TOKEN_EXPIRE_SECONDS": 60 * 60 * 24 * 30,
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,
    "PKCE_REQUIRED": True,
    "REQUEST_APPROVAL_PROMPT": "force",
    # http is allowed per application for loopback addresses only (oauth.models.Application).
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https"],
    "ALLOW_URI_WILDCARDS": False,
    "OIDC_ENABLED": False,
    "APPLICATION_ADMIN_CLASS": "accounts.oauth.admin.ApplicationAdmin",
    "ACCESS_TOKEN_ADMIN_CLASS": "accounts.oauth.admin.AccessTokenAdmin",
    "GRANT_ADMIN_CLASS": "accounts.oauth.admin.GrantAdmin",
    "ID_TOKEN_ADMIN_CLASS": "accounts.oauth.admin.IDTokenAdmin",
    "REFRESH_TOKEN_ADMIN_CLASS": "accounts.oauth.admin.RefreshTokenAdmin",
    **{
        f"COMPLIANT_BCP_RFC9700_{gate}": True
        for gate in (
            "IMPLICIT_GRANT", "PASSWORD_GRANT", "PKCE_METHOD", "ACCESS_TOKEN_TRANSPORT", "AUTHZ_RESPONSE_ISS",
            "TOKEN_STORAGE", "REFRESH_TOKEN", "REDIRECT_URI_SCHEME", "REDIRECT_URI_MATCHING", "PKCE_REQUIRED",
        )
    },
}

# --- REST framework ---------------------------------------------------------
REST_FRAMEWORK = {
    # Organization-bound views set theirs in accounts.api.base.OrganizationAPIView.
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "jagcall.kernel.api.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "jagcall.kernel.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "jagcall.kernel.api.schema.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": ["jagcall.kernel.api.throttling.SlidingWindowThrottle"],
    "UNAUTHENTICATED_USER": None,
}
# Per credential (API key) or per person (JWT, session), per minute.
API_RATE_LIMIT_READS = env("API_RATE_LIMIT_READS", default=200, cast=int)
API_RATE_LIMIT_WRITES = env("API_RATE_LIMIT_WRITES", default=30, cast=int)
API_RATE_LIMIT_WINDOW_SECONDS = 60
# All of an organization's keys and people together: this many times one caller's budget.
API_RATE_LIMIT_ORGANIZATION_MULTIPLIER = env("API_RATE_LIMIT_ORGANIZATION_MULTIPLIER", default=5, cast=int)

# --- OpenAPI schema of the API (drf-spectacular) -------------------------------
# Served at /api/v1/schema/ with Swagger UI at /api/docs/; the UI's assets come
# from drf-spectacular-sidecar through our own static files, never a CDN.
# jagcall.kernel.api registers the schema extensions (jagcall/kernel/api/schema.py) at startup.
INSTALLED_APPS = [*INSTALLED_APPS, "drf_spectacular", "drf_spectacular_sidecar", "jagcall.kernel.api"]
SPECTACULAR_SETTINGS = {
    "TITLE": "JagCall API",
    "VERSION": "1.0.0",
    "DESCRIPTION": (
        "The JagCall REST API. Every endpoint follows the conventions in docs/api.md: "
        "credentials in `Authorization: Bearer` only (an API key `jc_live_…` or a JWT from "
        "`POST /api/v1/auth/token`), each bound to one organization; one scope per operation "
        "(listed on each operation as `x-required-scopes`); errors always as "
        '`{"error": {"code", "message", "details"}}`; cursor-paginated lists (`limit`, `cursor`); '
        "rate limits announced in `RateLimit-*` headers; and an optional `Idempotency-Key` on POST."
    ),
    # 3.1: a security requirement may name the scope an http bearer credential needs.
    "OAS_VERSION": "3.1.0",
    "SCHEMA_PATH_PREFIX": r"/api/v[0-9]+",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PUBLIC": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # Only the public API: any other DRF view (none today) stays out of the schema.
    "PREPROCESSING_HOOKS": ["jagcall.kernel.api.schema.only_public_api"],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # validatorUrl null: Swagger UI would otherwise load a badge from an outside validator.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None, "persistAuthorization": False},
}

# --- Celery --------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_BROKER_URL
CELERY_RESULT_BACKEND = REDIS_BROKER_URL
CELERY_RESULT_EXPIRES = 60 * 60 * 24
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env("CELERY_TASK_SOFT_TIME_LIMIT", default=240, cast=int)
CELERY_TASK_TIME_LIMIT = env("CELERY_TASK_TIME_LIMIT", default=300, cast=int)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT * 2}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # keep our JSON log format in workers and beat
CELERY_TASK_QUEUES_NAMES = ("default", "transcription", "embeddings", "webhooks")
CELERY_TASK_ROUTES = {
    "telephony.tasks.*transcri*": {"queue": "transcription"},
    "knowledge.tasks.*": {"queue": "embeddings"},
    "integrations.tasks.webhook_*": {"queue": "webhooks"},
}
CELERY_BEAT_SCHEDULE = {
    # https://crontab.guru/#17_3_*_*_* : every day at 03:17 UTC
    "invitations-purge-expired": {
        "task": "accounts.tasks.invitation_purge_expired_task",
        "schedule": crontab(minute=17, hour=3),
    },
    # https://crontab.guru/#7_*_*_*_* : every hour at minute 7
    "oauth-tokens-purge-expired": {
        "task": "accounts.oauth.tasks.oauth_tokens_purge_expired_task",
        "schedule": crontab(minute=7),
    },
    # https://crontab.guru/#41_2_*_*_* : every day at 02:41 UTC
    "audit-purge-expired-events": {
        "task": "compliance.tasks.purge_expired_events",
        "schedule": crontab(minute=41, hour=2),
    },
    # https://crontab.guru/#23_4_*_*_* : every day at 04:23 UTC
    "audit-verify-chains": {
        "task": "compliance.tasks.verify_chains",
        "schedule": crontab(minute=23, hour=4),
    },
}

# --- Channels ------------------------------------------------------------------
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_CHANNELS_URL], "prefix": "jc-asgi"},
    }
}

# --- SAML single sign-on (Enterprise; accounts/sso*.py) ----------------------------
# djangosaml2 runs the protocol; each organization's SP is built per request
# from its SamlConfiguration (accounts.sso.saml_config_loader).
INSTALLED_APPS = [*INSTALLED_APPS, "djangosaml2"]
# The IdP posts the response cross-site, where the Lax session cookie is not
# sent: djangosaml2 keeps the pending AuthnRequest ids in a session of its own,
# whose cookie is SameSite=None (and Secure outside DEBUG).
MIDDLEWARE = [
    *MIDDLEWARE[: MIDDLEWARE.index("django.contrib.sessions.middleware.SessionMiddleware") + 1],
    "djangosaml2.middleware.SamlSessionMiddleware",
    *MIDDLEWARE[MIDDLEWARE.index("django.contrib.sessions.middleware.SessionMiddleware") + 1 :],
]
SAML_SESSION_COOKIE_NAME = "jagcall_saml_session" if DEBUG else "__Host-saml_session"
SAML_CONFIG_LOADER = "accounts.sso.saml_config_loader"
SAML_DEFAULT_BINDING = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
SAML_XMLSEC_BINARY = "/usr/bin/xmlsec1"  # Debian package xmlsec1
SAML_ACCEPTED_TIME_DIFF = 60  # seconds of clock skew tolerated with the IdP
SAML_CSP_HANDLER = ""  # our pages set their own headers; djangosaml2 need not patch them

# --- logging ---------------------------------------------------------------------
LOG_FORMAT = env("LOG_FORMAT", default="text" if DEBUG else "json")
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "jagcall.kernel.logging.RequestIdFilter"}},
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
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "embedded_postgres": {"level": "WARNING"},
    },
}
