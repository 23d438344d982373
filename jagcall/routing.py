"""Every app's websocket routes, composed in one list."""

from accounts.routing import websocket_urlpatterns as accounts_ws

websocket_urlpatterns = [*accounts_ws]
