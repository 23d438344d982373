"""Serving the web: languages and time, static and uploaded files, email, the
admin's address, security headers and cookies."""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from jagcall.kernel.env import env, is_set
from jagcall.settings.core import BASE_DIR, DATA_DIR, DEBUG, EMBEDDED_SERVICES_ALLOWED, TESTING

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
# Form bodies other than files (knowledge documents: jagcall/settings/knowledge.py); nginx's ceiling too.
DATA_UPLOAD_MAX_MEMORY_SIZE = 20 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
# Signed inbound webhooks (jagcall/kernel/webhooks): a larger body is refused with 413 before its
# signature is read; deliveries are remembered this many days to answer the providers' retries.
WEBHOOK_MAX_BODY_BYTES = env("WEBHOOK_MAX_BODY_BYTES", default=1024 * 1024, cast=int)
WEBHOOK_DEDUPE_DAYS = env("WEBHOOK_DEDUPE_DAYS", default=30, cast=int)

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
