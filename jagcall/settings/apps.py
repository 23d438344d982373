"""What runs: installed applications, middleware, URL and server entry points,
templates. The lists are whole here (not extended by topic modules) so their
order can be read in one place."""

from __future__ import annotations

from jagcall.settings.core import BASE_DIR

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
    "jagcall.kernel.webhooks",  # signed inbound webhooks: the base view and its dedupe records
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.usersessions",
    "accounts",
    "auditlog",  # only its model diff, behind compliance.services (compliance/diff.py); it records nothing itself
    "compliance",
    "integrations",
    "billing",
    "telephony",
    "knowledge",
    "messaging",
    # OAuth 2.0 authorization server (settings/identity.py)
    "oauth2_provider",
    "accounts.oauth",
    # OpenAPI schema of the API (settings/api.py). jagcall.kernel.api registers the
    # schema extensions (jagcall/kernel/api/schema/) at startup.
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "jagcall.kernel.api",
    # SAML single sign-on (settings/identity.py)
    "djangosaml2",
]

MIDDLEWARE = [
    "jagcall.kernel.logging.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The IdP posts the SAML response cross-site, where the Lax session cookie is not
    # sent: djangosaml2 keeps the pending AuthnRequest ids in a session of its own,
    # whose cookie is SameSite=None (and Secure outside DEBUG).
    "djangosaml2.middleware.SamlSessionMiddleware",
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
                "jagcall.kernel.context_processors.simulated_mode",
            ],
        },
    },
]
