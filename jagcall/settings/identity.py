"""Identity: accounts and MFA (django-allauth), passwords, invitations,
Turnstile on registration, JWT, the OAuth 2.0 authorization server and SAML
single sign-on."""

from __future__ import annotations

import re
import secrets

from django.core.exceptions import ImproperlyConfigured

from jagcall.kernel.env import env, is_set
from jagcall.settings.core import (
    DEBUG,
    EMBEDDED_SERVICES_ALLOWED,
    SECRET_KEY,
    SITE_URL,
    TESTING,
    _development_secret,
    _require_in_production,
)

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
# Every unauthenticated endpoint, before its view runs (accounts/ratelimits.py, django-ratelimit
# counters in Redis). Above these a request gets 429 with Retry-After; with Redis down, 503.
# Per client (an IPv4 address or an IPv6 /64) and route:
SENSITIVE_RATE_LIMITS = {
    "default": env("RATE_LIMIT_SENSITIVE", default="30/m"),
    "mfa_authenticate": "10/m",
    "mfa_reauthenticate": "10/m",
    "mfa_reauthenticate_webauthn": "10/m",
    "account_confirm_login_code": "10/m",
    "account_reset_password_from_key": "20/m",
    "account_confirm_email": "20/m",
    "accounts:invitation-accept": "20/m",
    # An integration's server refreshes every user's tokens from one address.
    "oauth:token": "120/m",
    "oauth:revoke-token": "120/m",
    # Signed inbound webhooks: requests refused for their signature (valid deliveries are not counted).
    "hooks": env("RATE_LIMIT_WEBHOOK_REFUSALS", default="30/m"),
}
# Per target (the budget names of accounts/ratelimits.py), over all clients together:
SENSITIVE_TARGET_RATE_LIMITS = {
    "sign_in": env("RATE_LIMIT_SIGN_IN_PER_ACCOUNT", default="10/5m"),  # one account's password, page and API
    "registration": "10/h",  # per email address: no mail-bombing an inbox through "already registered"
    "password_reset": "5/15m",  # reset emails per address
    "password_reset_key": "20/15m",  # reset links tried per account
    "second_factor": "10/10m",  # one account's codes
    "invitation": "60/m",  # per organization; every unknown invitation token shares one budget
    "single_sign_on": env("RATE_LIMIT_SSO_PER_ORGANIZATION", default="300/m"),  # SSO starts and responses
    "oauth_client": env("RATE_LIMIT_OAUTH_PER_CLIENT", default="600/m"),  # token requests of one OAuth client
}
for _name, _rate in [*SENSITIVE_RATE_LIMITS.items(), *SENSITIVE_TARGET_RATE_LIMITS.items()]:
    if not re.fullmatch(r"[0-9]+/[0-9]*[smhd]", str(_rate)):
        raise ImproperlyConfigured(
            f"Rate limit {_name!r} is {_rate!r}; write it as a count per period, like 30/m or 10/5m (s, m, h, d)."
        )
# The audit log keeps failures (failed or refused sign-ins, tokens, SSO responses, limits
# exceeded) bounded: per kind, target and window the first few are recorded one by one, then
# one summary carrying the count (compliance/services/sources.py).
AUDIT_FAILURE_WINDOW_SECONDS = env("AUDIT_FAILURE_WINDOW_SECONDS", default=300, cast=int)
AUDIT_FAILURES_RECORDED_PER_WINDOW = env("AUDIT_FAILURES_RECORDED_PER_WINDOW", default=5, cast=int)
# Platform-wide failures of one kind per window (a spray over many emails or addresses).
AUDIT_FAILURES_RECORDED_PER_KIND = 200
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
# Its apps (oauth2_provider, accounts.oauth) are listed in settings/apps.py.
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

# --- SAML single sign-on (Enterprise; accounts/sso*.py) ----------------------------
# djangosaml2 runs the protocol; each organization's SP is built per request
# from its SamlConfiguration (accounts.sso.saml.saml_config_loader). Its app and its
# session middleware (for the IdP's cross-site POST) are listed in settings/apps.py.
SAML_SESSION_COOKIE_NAME = "jagcall_saml_session" if DEBUG else "__Host-saml_session"
SAML_CONFIG_LOADER = "accounts.sso.saml.saml_config_loader"
SAML_DEFAULT_BINDING = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
SAML_XMLSEC_BINARY = "/usr/bin/xmlsec1"  # Debian package xmlsec1
SAML_ACCEPTED_TIME_DIFF = 60  # seconds of clock skew tolerated with the IdP
SAML_CSP_HANDLER = ""  # our pages set their own headers; djangosaml2 need not patch them
# Verified email domains (accounts/sso/domains.py): the DNS servers asked for the
# TXT record that proves a domain, as "ip" or "ip:port"; empty means the system's
# resolver (/etc/resolv.conf). Tests point it at a stand-in on 127.0.0.1.
SSO_DNS_NAMESERVERS = env("SSO_DNS_NAMESERVERS", default=[], cast=list)
SSO_DNS_TIMEOUT_SECONDS = env("SSO_DNS_TIMEOUT_SECONDS", default=5, cast=int)
