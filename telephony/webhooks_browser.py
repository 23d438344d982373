"""The voice URL of the softphone's TwiML application: Twilio asks it what to do with a call a browser places.

Twilio posts ``From=client:<identity>``, the dialled ``To`` and the
softphone's parameters (``CallerId``), signed with the auth token of the
organization's Twilio account. The answer is TwiML: a ``<Dial>`` from the
chosen number of the organization, or a spoken refusal and a hang-up. A
signed request whose CallSid, AccountSid or ApplicationSid is not of Twilio's
shape is answered 400 naming it, before anything is looked up.
"""

from __future__ import annotations

from django.http import HttpResponse
from django.urls import path

from jagcall.kernel.providers import twilio_sids
from jagcall.kernel.webhooks.views import TwilioWebhookView
from telephony.services import browser as browser_calling


def _twiml(body: str) -> HttpResponse:
    return HttpResponse(body, content_type="text/xml; charset=utf-8")


class BrowserVoiceHook(TwilioWebhookView):
    """``/hooks/twilio/browser/voice/`` (``twilio-hooks:browser-voice``).

    [!!] A valid signature proves Twilio sent the request for an account of
    ours; the identity in ``From`` must name an organization whose softphone
    lives in that very account, and the service checks, on every call, that
    the person is still a member allowed to place calls (a token outlives a
    removal by up to an hour).
    """

    sid_params = {
        "AccountSid": twilio_sids.ACCOUNT,
        "CallSid": twilio_sids.CALL,
        "ParentCallSid": twilio_sids.CALL,
        "ApplicationSid": twilio_sids.APPLICATION,
    }

    def auth_tokens(self, request) -> list[str]:
        from telephony.services.twilio_accounts import auth_token_for_account_sid

        token = auth_token_for_account_sid(request.POST.get("AccountSid", ""))
        return [token] if token else []

    def organization_for(self, request):
        return browser_calling.browser_organization_for(
            caller=request.POST.get("From", ""), account_sid=request.POST.get("AccountSid", "")
        )

    def event_id(self, request) -> str | None:
        # No dedupe record: the answer must be TwiML on Twilio's retries too, and the service is
        # idempotent by CallSid (a retry finds the call it placed and dials it again).
        return None

    def unknown_organization(self, request) -> HttpResponse:
        return _twiml(browser_calling.browser_refusal_twiml("This browser phone is not set up to place calls. Goodbye."))

    def handle(self, request, organization) -> HttpResponse:
        form = request.POST
        return _twiml(
            browser_calling.browser_call_connect(
                organization=organization,
                caller=form.get("From", ""),
                to=form.get("To", ""),
                caller_id=form.get(browser_calling.CALLER_ID_PARAM, ""),
                call_sid=form.get("CallSid", ""),
                account_sid=form.get("AccountSid", ""),
                application_sid=form.get("ApplicationSid", ""),
            )
        )


# Mounted by telephony/hooks.py under /hooks/twilio/ (namespace "twilio-hooks").
urlpatterns = [path("browser/voice/", BrowserVoiceHook.as_view(), name="browser-voice")]
