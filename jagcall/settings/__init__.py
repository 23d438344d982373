"""JagCall settings: one package split by topic, every value from the environment.

Development needs nothing set: with DEBUG on, the project starts its own
PostgreSQL + pgvector and Redis under .data/ (jagcall/kernel/embedded/) and keeps
a generated SECRET_KEY there. With DEBUG off (the default) it refuses to
start without SECRET_KEY, ALLOWED_HOSTS, DATABASE_URL, REDIS_URL and
EMAIL_HOST.
Every variable is listed in README.md.

`DJANGO_SETTINGS_MODULE=jagcall.settings` loads this package, which gathers the
topic modules below in order. A topic module imports by name what it needs
from an earlier one (never `import *`), so a reader sees where a value comes
from. INSTALLED_APPS and MIDDLEWARE are written whole in apps.py; a new
setting goes in the module of its topic (or a new module, added here).
"""

from jagcall.settings.core import *  # noqa: F403  DEBUG, data directory, secrets and hosts
from jagcall.settings.services import *  # noqa: F403  PostgreSQL, Redis, caches, sessions
from jagcall.settings.encryption import *  # noqa: F403  master keyset, blind-index keys
from jagcall.settings.apps import *  # noqa: F403  installed apps, middleware, templates
from jagcall.settings.identity import *  # noqa: F403  allauth, MFA, passwords, Turnstile, JWT, OAuth, SAML
from jagcall.settings.audit import *  # noqa: F403  audit log
from jagcall.settings.web import *  # noqa: F403  i18n, static and media files, email, admin, security headers
from jagcall.settings.api import *  # noqa: F403  REST framework, API rate limits, OpenAPI schema
from jagcall.settings.workers import *  # noqa: F403  Celery, Channels
from jagcall.settings.knowledge import *  # noqa: F403  knowledge bases: upload limits, processing, search
from jagcall.settings.conversations import *  # noqa: F403  live conversation engine: turn taking, guards
from jagcall.settings.messaging import *  # noqa: F403  texts: agent replies and their loop guard, contact imports
from jagcall.settings.billing import *  # noqa: F403  Stripe API version, grace period, metering, spend caps
from jagcall.settings.providers import *  # noqa: F403  provider credentials, base URLs, timeouts, PUBLIC_BASE_URL
from jagcall.settings.logs import *  # noqa: F403  logging
