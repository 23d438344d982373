"""Telephony's portal pages, under /o/<org_slug>/ (one module per area)."""

from telephony.views import agents, browser, calls, numbers

app_name = "telephony"

urlpatterns = [*agents.urlpatterns, *numbers.urlpatterns, *calls.urlpatterns, *browser.urlpatterns]
