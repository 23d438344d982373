"""Every app's websocket routes, composed in one list."""

from accounts.routing import websocket_urlpatterns as accounts_ws
from telephony.routing import websocket_urlpatterns as telephony_ws

websocket_urlpatterns = [*accounts_ws, *telephony_ws]
