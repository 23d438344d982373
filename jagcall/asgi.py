"""ASGI entry point: HTTP through Django, websockets through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jagcall.settings")
# The web server's process: its settings pool the database connections (DB_POOL_MAX_SIZE).
os.environ.setdefault("JAGCALL_PROCESS", "web")
django_asgi_app = get_asgi_application()

# Imported after Django is set up (models load through the routes).
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import re_path  # noqa: E402

from jagcall.kernel.serving import BodyLimit, RequestGate  # noqa: E402
from jagcall.routing import provider_stream_urlpatterns, websocket_urlpatterns  # noqa: E402

members = AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))

application = ProtocolTypeRouter(
    {
        # At most WEB_MAX_CONCURRENT_REQUESTS requests in Django at once, the rest wait in line; providers'
        # signed webhooks in a lane of their own, WEB_MAX_CONCURRENT_WEBHOOKS at once.
        "http": RequestGate(
            # Uploads over their route's limit are refused before Django reads their body (413).
            BodyLimit(django_asgi_app, limits=settings.REQUEST_BODY_LIMITS),
            limit=settings.WEB_MAX_CONCURRENT_REQUESTS if settings.WEB_PROCESS else 0,
            server_timing=settings.SERVER_TIMING_HEADER,
            lanes=(
                {"/hooks/": settings.WEB_MAX_CONCURRENT_WEBHOOKS}
                if settings.WEB_PROCESS and settings.WEB_MAX_CONCURRENT_WEBHOOKS
                else None
            ),
        ),
        # [!!] Providers' streams first, outside the Origin and session checks (they send neither): each
        # consumer authenticates by a single-use token (accounts.consumers.ProviderStreamConsumer).
        # Everything else is a member's socket: Origin, then session, then the route's access check.
        "websocket": URLRouter([*provider_stream_urlpatterns, re_path(r"", members)]),
    }
)

if settings.WEB_PROCESS:
    from jagcall.kernel.memory import freeze_startup_objects  # noqa: E402

    # [!!] Last: what has loaded by now lives as long as the process. Out of the collector's count, a call's
    # reference cycles are collected within a few calls instead of dozens (jagcall/kernel/memory.py).
    freeze_startup_objects()
