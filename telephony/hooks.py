"""Twilio's signed callbacks to telephony, under /hooks/twilio/ (namespace ``twilio-hooks``).

Names: ``voice`` (a call reaches one of our numbers), ``status`` (a call's
status changes), ``recording`` (a recording is ready). The wiring (jagcall/urls.py) mounts
messaging's ``sms`` and ``sms-status`` (messaging/webhooks.py) in the same
namespace. Numbers bought or imported point Twilio at these.
"""

from django.urls import path

from telephony import webhooks

app_name = "twilio-hooks"

urlpatterns: list = [
    path("voice/", webhooks.VoiceHook.as_view(), name="voice"),
    path("status/", webhooks.StatusHook.as_view(), name="status"),
    path("recording/", webhooks.RecordingHook.as_view(), name="recording"),
]

from telephony import webhooks_browser  # noqa: E402  browser calling: the softphone's voice URL, "browser-voice"

urlpatterns += webhooks_browser.urlpatterns
