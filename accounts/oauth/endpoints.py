"""The authorization server's endpoints: authorize (our consent screen), token, revoke.

They are django-oauth-toolkit's views with our rules around them; the
protocol itself (PKCE, codes, rotation) runs in oauthlib through
oauth/server.py and oauth/validators.py.

- [!!] ``/oauth/authorize`` needs a signed-in person. It shows our consent
  screen: what the application asks for, in words (the scope registry's
  labels), and which of their organizations to connect. The code it issues
  is bound to that organization and to the scopes given, never more than the
  person's role there allows. Nothing is ever approved without the screen.
- ``/oauth/token`` and ``/oauth/revoke_token`` run in one transaction each,
  so a code exchange or a rotation is all or nothing; their errors are the
  RFC 6749 JSON errors (4xx), never cached.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from django.db import transaction
from django.shortcuts import render
from oauth2_provider.exceptions import OAuthToolkitError
from oauth2_provider.views import RevokeTokenView as ToolkitRevokeTokenView
from oauth2_provider.views import TokenView as ToolkitTokenView
from oauth2_provider.views.base import BaseAuthorizationView
from oauthlib.oauth2.rfc6749 import errors

from accounts.mixins import SESSION_LAST_ORG
from accounts.scopes import SCOPES, scope_choices
from accounts.security_events import emit
from jagcall.kernel.errors import ApplicationError
from accounts.oauth import selectors, services
from accounts.oauth.forms import ConsentForm
from accounts.oauth.validators import RESOURCE_UNSUPPORTED

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class AuthorizationView(BaseAuthorizationView):
    template_name = "oauth/authorize.html"
    error_template_name = "oauth/authorize_error.html"

    # --- GET: validate the request, then ask ------------------------------------------------

    def get(self, request, *args, **kwargs):
        application = selectors.oauth_application_for_client_id(client_id=request.GET.get("client_id", ""))
        try:
            scopes, credentials = self.validate_authorization_request(request)
        except OAuthToolkitError as error:
            return self.error_response(error, application)
        if "resource" in request.GET:
            error = OAuthToolkitError(
                errors.CustomOAuth2Error(
                    error="invalid_target", description=RESOURCE_UNSUPPORTED, state=credentials.get("state")
                ),
                redirect_uri=credentials["redirect_uri"],
            )
            return self.error_response(error, application)
        initial = {
            "client_id": credentials["client_id"],
            "redirect_uri": credentials["redirect_uri"],
            "response_type": credentials["response_type"],
            "scope": " ".join(scopes),
            "state": credentials.get("state") or "",
            "code_challenge": credentials.get("code_challenge") or "",
            "code_challenge_method": credentials.get("code_challenge_method") or "",
        }
        return self._consent(request, application, list(scopes), initial=initial)

    # --- POST: the person's answer ----------------------------------------------------------------

    def post(self, request, *args, **kwargs):
        application = selectors.oauth_application_for_client_id(client_id=request.POST.get("client_id", ""))
        if application is None:
            return self._error_page(request, "invalid_client", "This application does not exist (any more).")
        requested = [s for s in (request.POST.get("scope") or "").split() if s in SCOPES]
        choices = selectors.oauth_consent_choices(request=request, requested=requested)
        eligible = [c.organization for c in choices if not c.blocked_reason]
        form = ConsentForm(request.POST)
        if not form.is_valid():
            return self._error_page(
                request, "invalid_request", "The authorization request was incomplete. Start again from the app."
            )
        credentials = form.credentials()
        if not application.redirect_uri_allowed(credentials["redirect_uri"]):
            return self._error_page(
                request, "invalid_request", "The redirect URI is not one this application registered."
            )
        if not form.allowed:
            emit("oauth.denied", request=request, user=request.user, application_id=str(application.id))
            return self._respond(request, application, credentials, scopes=[], allow=False)

        organization = next((o for o in eligible if o.slug == form.cleaned_data["organization"]), None)
        try:
            granted = services.oauth_consent_check(
                user=request.user,
                organization=organization,
                eligible=eligible,
                requested=requested,
                granted=form.cleaned_data["scopes"] or [],
            )
        except ApplicationError as error:
            # Shown above the form: the choices are custom-rendered radios and boxes, not one input to link to.
            form.add_error(None, error.message)
            return self._consent(request, application, requested, form=form, choices=choices, status=400)
        credentials["jagcall_organization"] = organization
        response = self._respond(request, application, credentials, scopes=granted, allow=True)
        if response.status_code == 302 and "code=" in response["Location"]:
            services.oauth_authorized(
                request=request, user=request.user, organization=organization, application=application, scopes=granted
            )
        return response

    # --- helpers -----------------------------------------------------------------------------

    def _respond(self, request, application, credentials, *, scopes, allow):
        try:
            uri, _headers, _body, _status = self.create_authorization_response(
                request=request, scopes=" ".join(scopes), credentials=credentials, allow=allow
            )
        except OAuthToolkitError as error:
            return self.error_response(error, application)
        return self.redirect(uri, application)

    def _consent(self, request, application, requested, *, initial=None, form=None, choices=None, status=200):
        if choices is None:
            choices = selectors.oauth_consent_choices(request=request, requested=requested)
        eligible = [c for c in choices if not c.blocked_reason]
        if form is None:
            last = request.session.get(SESSION_LAST_ORG)
            chosen = next((c for c in eligible if c.organization.slug == last), eligible[0] if eligible else None)
            initial = {
                **(initial or {}),
                "organization": chosen.organization.slug if chosen else None,
                "scopes": [s for s, _label in chosen.allowed] if chosen else [],
            }
            form = ConsentForm(initial=initial)
        redirect_uri = form["redirect_uri"].value() or ""
        context = {
            "application": application,
            "requested": scope_choices(requested),
            "choices": choices,
            "can_connect": bool(eligible),
            "form": form,
            "redirect_host": urlsplit(redirect_uri).netloc,
        }
        response = render(request, self.template_name, context, status=status)
        response["Cache-Control"] = "no-store"
        return response

    def _error_page(self, request, code: str, description: str, status: int = 400):
        return render(
            request, self.error_template_name, {"error": {"error": code, "description": description}}, status=status
        )

    def render_to_response(self, context, status=400, **kwargs):
        """The toolkit's answer to an error it must not redirect (unknown client, unregistered redirect URI)."""
        error = context["error"]
        return self._error_page(self.request, error.error, error.description or "", status=status)


class TokenView(ToolkitTokenView):
    """``POST /oauth/token``: authorization_code (with code_verifier) or refresh_token; nothing else."""

    def post(self, request, *args, **kwargs):
        with transaction.atomic():
            response = self.authorization_flow_token_response(request)
        for header, value in NO_STORE.items():
            response[header] = value
        grant_type = request.POST.get("grant_type", "")[:40]
        if response.status_code == 200:
            emit("oauth.token_issued", request=request, grant_type=grant_type, client_id=request.POST.get("client_id"))
        else:
            emit("oauth.token_refused", request=request, reason=_error_code(response), grant_type=grant_type)
        return response


class RevokeTokenView(ToolkitRevokeTokenView):
    """``POST /oauth/revoke_token`` (RFC 7009): the client revokes one of its tokens (and its pair)."""

    def post(self, request, *args, **kwargs):
        with transaction.atomic():
            response = super().post(request, *args, **kwargs)
        for header, value in NO_STORE.items():
            response[header] = value
        if response.status_code == 200:
            emit("oauth.token_revoked", request=request, client_id=request.POST.get("client_id"))
        return response


def _error_code(response) -> str:
    try:
        return str(json.loads(response.content or b"{}").get("error", "error"))[:40]
    except (ValueError, AttributeError):
        return "error"
