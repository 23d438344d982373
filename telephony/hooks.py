"""Twilio's signed callbacks to telephony, under /hooks/twilio/ (namespace ``twilio-hooks``).

Names: ``voice`` (a call reaches one of our numbers), ``status`` (a call's
status changes), ``recording`` (a recording is ready), ``sms`` (a text
reaches one of our numbers). Numbers bought or imported point Twilio at these.
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

from telephony import webhooks_sms  # noqa: E402  texts to our numbers (opt-outs), "sms"

urlpatterns += webhooks_sms.urlpatterns
