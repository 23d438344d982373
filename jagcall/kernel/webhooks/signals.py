"""What the webhook base announces; the kernel imports no app, so apps listen.

``webhook_refused`` is sent for every request refused for its signature
(missing or invalid), before anything reads the database, with keyword
arguments:

- ``provider``: the view's provider ("twilio", "stripe", ...);
- ``reason``: "missing" or "invalid";
- ``path``: the request's path (at most 300 characters);
- ``remote_addr``: REMOTE_ADDR as the server saw it (a proxy's, behind one);
- ``request_id``: the request's id (jagcall.kernel.logging);
- ``request``: the request itself, for receivers that work out the client's
  address behind the trusted proxy (accounts.security_events.client_ip).

compliance turns it into a bounded audit record and accounts counts it
against the client's webhook budget (accounts/ratelimits.py).
[!!] A receiver that raises fails the request with 500, not with a silent
pass: refusals are never unrecorded.
"""

from django.dispatch import Signal

webhook_refused = Signal()
