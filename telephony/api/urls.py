"""Telephony's API endpoints (mounted in the one ``api`` namespace under /api/v1/)."""

from telephony.api import agents, calls, numbers

urlpatterns = [*agents.urlpatterns, *numbers.urlpatterns, *calls.urlpatterns]
