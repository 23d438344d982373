"""Telephony's portal pages, under /o/<org_slug>/ (one module per area)."""

from telephony.views import agents, browser, calls, numbers, outbound, recordings

app_name = "telephony"

urlpatterns = [
    *agents.urlpatterns,
    *numbers.urlpatterns,
    *outbound.urlpatterns,
    *calls.urlpatterns,
    *recordings.urlpatterns,
    *browser.urlpatterns,
]
