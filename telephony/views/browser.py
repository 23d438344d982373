"""Browser calling: the softphone page and its access token."""

from __future__ import annotations

import logging

from django.http import JsonResponse
from django.shortcuts import render
from django.urls import Resolver404, path, resolve, reverse
from django.views import View
from django.views.decorators.cache import never_cache
from django.utils.decorators import method_decorator

from accounts.mixins import OrganizationViewMixin
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.providers import ProviderError, simulated_mode
from telephony.selectors.browser import browser_caller_numbers
from telephony.services import browser as browser_calling

logger = logging.getLogger("jagcall.telephony")

SDK_VERSION = "2.18.5"


def _place_call_url(org_slug: str) -> str | None:
    """The portal's "place a call" page, where the platform dials (the fallback when browsers cannot reach Twilio)."""
    url = f"/o/{org_slug}/calls/new/"
    try:
        resolve(url)
    except Resolver404:
        return None
    return url


class SoftphoneView(OrganizationViewMixin, View):
    """The softphone: dial pad, caller number, call / hang up / mute, incoming calls."""

    permission_required = browser_calling.BROWSER_CALLING_PERMISSION
    template_name = "telephony/browser/softphone.html"

    def get(self, request, org_slug):
        numbers = list(browser_caller_numbers(organization=self.organization))
        context = {
            "caller_numbers": numbers,
            "simulated": simulated_mode(),
            "token_url": reverse("telephony:browser-token", kwargs={"org_slug": self.organization.slug}),
            "place_call_url": _place_call_url(self.organization.slug),
            "sdk_path": f"vendor/twilio-voice-sdk-{SDK_VERSION}/twilio.min.js",
            "token_ttl": browser_calling.BROWSER_TOKEN_TTL_SECONDS,
        }
        return render(request, self.template_name, context)


@method_decorator(never_cache, name="post")
class BrowserTokenView(OrganizationViewMixin, View):
    """POST: ``{token, identity, expires_at}`` for the signed-in member (session and CSRF token required)."""

    permission_required = browser_calling.BROWSER_CALLING_PERMISSION

    def post(self, request, org_slug):
        try:
            issued = browser_calling.browser_token_issue(organization=self.organization, actor=self.principal)
        except ProviderError as error:
            logger.warning("browser calling token not issued for organization %s: %s", self.organization.pk, error)
            message = f"Twilio could not set up browser calling: {error.message}."
            return JsonResponse({"error": message, "code": "provider_error"}, status=502)
        except ApplicationError as error:
            return JsonResponse({"error": error.message, "code": error.code}, status=error.status)
        return JsonResponse(
            {
                "token": issued.token,
                "identity": issued.identity,
                "expires_at": issued.expires_at.isoformat().replace("+00:00", "Z"),
                "ttl_seconds": browser_calling.BROWSER_TOKEN_TTL_SECONDS,
            }
        )


urlpatterns = [
    path("phone/", SoftphoneView.as_view(), name="softphone"),
    path("phone/token", BrowserTokenView.as_view(), name="browser-token"),
]
