"""Twilio's signed callbacks to telephony, under /hooks/twilio/ (namespace ``twilio-hooks``).

Names: ``voice`` (a call reaches one of our numbers), ``status`` (a call's
status changes), ``recording`` (a recording is ready). Numbers bought or
imported point Twilio at these.
"""

app_name = "twilio-hooks"

urlpatterns: list = []
