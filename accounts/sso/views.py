"""Single sign-on pages: the owner's settings page, and the SAML endpoints at ``/sso/<sso_slug>/``: SP metadata, login, assertion consumer.

These routes are public (the visitor is not signed in yet); the organization
comes from the URL and must have an enabled SAML configuration on the
Enterprise plan. djangosaml2 runs the protocol; what an accepted assertion
means is decided by ``accounts.sso.services.sso_login_complete``.
"""

from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.auth import login
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from djangosaml2 import views as saml_views
from saml2.response import IncorrectlySigned, StatusError, UnsolicitedResponse
from saml2.saml import NAMEID_FORMAT_TRANSIENT
from saml2.sigver import MissingKey, SignatureError
from saml2.validate import ResponseLifetimeExceed, ToEarly

from accounts.entitlements import has_entitlement
from accounts.mixins import OrganizationViewMixin
from accounts.security_events import emit
from accounts.sso import saml, services as sso_services
from accounts.sso.forms import SsoSettingsForm
from accounts.sso.selectors import sso_configuration_for_login, sso_configuration_get
from accounts.views import apply_error
from jagcall.kernel.errors import ApplicationError

logger = logging.getLogger(__name__)


class OrganizationSsoView(OrganizationViewMixin, View):
    """Owners set up SAML single sign-on (Enterprise plan)."""

    permission_required = "sso.manage"
    template_name = "accounts/organization_sso.html"

    def _render(self, request, form=None, status=200):
        configuration = sso_configuration_get(organization=self.organization)
        if form is None:
            initial = {}
            if configuration is not None:
                initial = {
                    "metadata_xml": configuration.idp_metadata_xml,
                    "metadata_url": configuration.idp_metadata_url,
                    "enabled": configuration.enabled,
                    "require_sso": configuration.require_sso,
                }
            form = SsoSettingsForm(initial=initial)
        context = {
            "form": form,
            "configuration": configuration,
            "sso_available": has_entitlement(self.organization, "sso"),
            "sp_urls": saml.sp_urls(self.organization),
        }
        return render(request, self.template_name, context, status=status)

    def get(self, request, org_slug):
        return self._render(request)

    def post(self, request, org_slug):
        form = SsoSettingsForm(request.POST)
        status = 400
        if form.is_valid():
            try:
                sso_services.sso_configure(
                    organization=self.organization,
                    actor=request.user,
                    metadata_xml=form.cleaned_data["metadata_xml"],
                    metadata_url=form.cleaned_data["metadata_url"],
                    enabled=form.cleaned_data["enabled"],
                    require_sso=form.cleaned_data["require_sso"],
                )
            except ApplicationError as error:
                apply_error(form, error)
                status = error.status
            else:
                messages.success(request, "Single sign-on settings saved.")
                return redirect("accounts:organization-sso", org_slug=self.organization.slug)
        return self._render(request, form=form, status=status)


NOT_SET_UP = "Single sign-on is not set up for this organization. Sign in with your email and password instead."


def sso_error(request, message: str, *, status: int = 403, organization=None):
    return render(request, "accounts/sso_error.html", {"message": message, "sso_organization": organization}, status=status)


class _OrganizationSsoMixin:
    """Resolve ``sso_slug`` to an enabled configuration once, before djangosaml2 runs."""

    def dispatch(self, request, *args, **kwargs):
        configuration = sso_configuration_for_login(slug=kwargs.get("sso_slug", ""))
        if configuration is None:
            return sso_error(request, NOT_SET_UP)
        self.saml_configuration = request.saml_configuration = configuration
        self.organization = configuration.organization
        kwargs.pop("sso_slug", None)
        try:
            return super().dispatch(request, *args, **kwargs)
        except saml.SsoUnavailable:
            return sso_error(request, NOT_SET_UP)


class SsoMetadataView(_OrganizationSsoMixin, saml_views.MetadataView):
    """This organization's SP metadata, for its identity provider."""

    http_method_names = ["get", "head"]


class SsoLoginView(_OrganizationSsoMixin, saml_views.LoginView):
    """Send the browser to the IdP with an AuthnRequest; its id is kept in the SAML session."""

    http_method_names = ["get", "head"]

    def get(self, request, *args, **kwargs):
        try:
            return super().get(request, *args, **kwargs)
        except Exception:  # broken IdP metadata must read as a clear page, not a 500
            logger.warning("Could not start SAML sign-in for %s", self.organization.slug, exc_info=True)
            return sso_error(
                request,
                "Single sign-on could not be started: your identity provider's settings look incomplete. "
                "Ask an owner of the organization to check them.",
                status=400,
                organization=self.organization,
            )


def _failure_message(exception) -> str:
    if isinstance(exception, (SignatureError, MissingKey, IncorrectlySigned)):
        return "The sign-in response was not signed with your identity provider's certificate, so it was refused."
    if isinstance(exception, (ResponseLifetimeExceed, ToEarly)):
        return "The sign-in response has expired. Start signing in again."
    if isinstance(exception, UnsolicitedResponse):
        return (
            "This sign-in response does not answer a sign-in started in this browser, or it was already used. "
            "Start signing in again."
        )
    if isinstance(exception, StatusError):
        return "Your identity provider did not sign you in."
    if isinstance(exception, PermissionDenied) and str(exception):
        return str(exception)
    return "The sign-in response could not be verified, so it was refused. Start signing in again."


@method_decorator(csrf_exempt, name="dispatch")  # the IdP posts here cross-site; the response is signed
class SsoAssertionConsumerView(_OrganizationSsoMixin, saml_views.AssertionConsumerServiceView):
    """Check the IdP's signed response, then sign the person in to this organization."""

    http_method_names = ["post"]

    def handle_acs_failure(self, request, exception=None, status=403, **kwargs):
        emit(
            "sso.login_failed",
            request=request,
            organization=self.organization,
            reason=type(exception).__name__ if exception is not None else "unknown",
        )
        return sso_error(request, _failure_message(exception), status=status, organization=self.organization)

    def authenticate_user(self, request, session_info, attribute_mapping, create_unknown_user, assertion_info):
        configuration = self.saml_configuration
        issuer = session_info.get("issuer")
        if issuer != configuration.idp_entity_id:
            raise PermissionDenied("The sign-in response came from an identity provider this organization does not use.")
        name_id = session_info.get("name_id")
        if name_id is None or not (name_id.text or "").strip():
            raise PermissionDenied("Your identity provider did not say who you are (no NameID).")
        if name_id.format == NAMEID_FORMAT_TRANSIENT:
            raise PermissionDenied(
                "Your identity provider sent a temporary NameID. Configure it to send a persistent NameID or the email address."
            )
        if not assertion_info.get("assertion_id"):
            raise PermissionDenied("The sign-in response has no bearer confirmation.")
        if not sso_services.assertion_mark_used(
            assertion_id=assertion_info["assertion_id"],
            not_on_or_after=saml.not_on_or_after(assertion_info.get("not_on_or_after")),
        ):
            raise PermissionDenied("This sign-in response was already used. Start signing in again.")
        email, name = saml.attributes_email_and_name(session_info.get("ava") or {}, name_id.text.strip())
        try:
            user = sso_services.sso_login_complete(
                request=request,
                organization=self.organization,
                idp_entity_id=issuer,
                name_id=name_id.text.strip(),
                email=email,
                name=name,
            )
        except ApplicationError as error:
            raise PermissionDenied(error.message) from None
        login(request, user, backend="allauth.account.auth_backends.AuthenticationBackend")
        return user

    def custom_redirect(self, user, relay_state, session_info):
        return reverse("accounts:dashboard", kwargs={"org_slug": self.organization.slug})
