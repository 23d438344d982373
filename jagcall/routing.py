"""Every app's websocket routes, composed in two lists (jagcall/asgi.py mounts them).

- ``websocket_urlpatterns``: members' sockets under /ws/o/<org_slug>/ (session and Origin checked;
  consumers derive from accounts.consumers.OrganizationConsumer).
- ``provider_stream_urlpatterns``: sockets a provider opens with a single-use token instead of a
  session (no cookie, no Origin: Twilio's media streams); consumers derive from
  accounts.consumers.ProviderStreamConsumer. Both lists are walked by accounts/tests/test_websocket_access.py.
"""

from accounts.routing import websocket_urlpatterns as accounts_ws
from telephony.routing import provider_stream_urlpatterns as telephony_streams
from telephony.routing import websocket_urlpatterns as telephony_ws

websocket_urlpatterns = [*accounts_ws, *telephony_ws]
provider_stream_urlpatterns = [*telephony_streams]
