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
from accounts.access import sign_in_of, sign_in_record_sso
from accounts.sso import domains as domains_dns, saml, services as sso_services
from accounts.sso.forms import SsoDomainChoiceForm, SsoDomainForm, SsoSettingsForm
from accounts.sso.selectors import sso_configuration_for_login, sso_configuration_get, sso_domain_list
from accounts.views import apply_error
from jagcall.kernel.errors import ApplicationError

logger = logging.getLogger(__name__)


class OrganizationSsoView(OrganizationViewMixin, View):
    """Owners set up SAML single sign-on (Enterprise plan) and verify their email domains.

    One page, one address: the POST's ``action`` says which form was sent
    (``domain_add``, ``domain_verify``, ``domain_remove``; the settings form
    otherwise). A domain id names a row of this organization or answers 404.
    """

    permission_required = "sso.manage"
    template_name = "accounts/organization_sso.html"

    def _render(self, request, form=None, domain_form=None, domain_error=None, status=200):
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
        domains = [
            {
                "row": row,
                "record_name": domains_dns.txt_record_names(row.domain)[0],
                "record_value": domains_dns.txt_record_value(row.token),
            }
            for row in sso_domain_list(organization=self.organization)
        ]
        context = {
            "form": form,
            "domain_form": domain_form or SsoDomainForm(),
            "domain_error": domain_error,
            "domains": domains,
            "configuration": configuration,
            "sso_available": has_entitlement(self.organization, "sso"),
            "sp_urls": saml.sp_urls(self.organization),
        }
        return render(request, self.template_name, context, status=status)

    def get(self, request, org_slug):
        return self._render(request)

    def post(self, request, org_slug):
        action = request.POST.get("action", "")
        if action == "domain_add":
            return self._domain_add(request)
        if action in ("domain_verify", "domain_remove"):
            return self._domain_change(request, action)
        return self._settings_save(request)

    def _settings_save(self, request):
        form = SsoSettingsForm(request.POST)
        status = 400
        if form.is_valid():
            try:
                sso_services.sso_configure(
                    organization=self.organization,
                    actor=self.principal,
                    metadata_xml=form.cleaned_data["metadata_xml"],
                    metadata_url=form.cleaned_data["metadata_url"],
                    enabled=form.cleaned_data["enabled"],
                    require_sso=form.cleaned_data["require_sso"],
                    request=request,
                )
            except ApplicationError as error:
                apply_error(form, error)
                status = error.status
            else:
                messages.success(request, "Single sign-on settings saved.")
                return self._back()
        return self._render(request, form=form, status=status)

    def _domain_add(self, request):
        form = SsoDomainForm(request.POST)
        status = 400
        if form.is_valid():
            try:
                row = sso_services.sso_domain_add(
                    organization=self.organization, actor=self.principal, domain=form.cleaned_data["domain"]
                )
            except ApplicationError as error:
                apply_error(form, error)
                status = error.status
            else:
                messages.success(request, f"{row.domain} added. Publish its TXT record, then press Verify.")
                return self._back()
        return self._render(request, domain_form=form, status=status)

    def _domain_change(self, request, action):
        choice = SsoDomainChoiceForm(request.POST)
        if not choice.is_valid():
            return self._render(request, domain_error="Choose one of the domains listed below.", status=400)
        domain_id = choice.cleaned_data["domain_id"]
        try:
            if action == "domain_verify":
                row = sso_services.sso_domain_verify(organization=self.organization, actor=self.principal, domain_id=domain_id)
                messages.success(request, f"{row.domain} is verified.")
            else:
                sso_services.sso_domain_remove(organization=self.organization, actor=self.principal, domain_id=domain_id)
                messages.success(request, "Domain removed.")
        except ApplicationError as error:
            return self._render(request, domain_error=error.message, status=error.status)
        return self._back()

    def _back(self):
        return redirect("accounts:organization-sso", org_slug=self.organization.slug)


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

    def should_prevent_auth(self, request) -> bool:
        # [!!] Signed in is not enough: a session opened by a password or by another
        # organization's sign-on still goes to this organization's identity provider.
        # Only a session this organization's sign-on already vouches for skips it.
        return request.user.is_authenticated and sign_in_of(request).vouched_by_sso(self.organization)

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


class _Refused(PermissionDenied):
    """The service refused the person (accounts.sso.services.SsoLoginRefused); its message is shown as is."""


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

    session_not_on_or_after: float | None = None

    def custom_validation(self, response):
        # Called by djangosaml2 with the verified response, before authenticate_user.
        self.session_not_on_or_after = saml.session_not_on_or_after(response)

    def handle_acs_failure(self, request, exception=None, status=403, **kwargs):
        if isinstance(exception, _Refused):
            # Already recorded as sso.login_refused, with its reason, by the service.
            return sso_error(request, str(exception), status=status, organization=self.organization)
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
        except sso_services.SsoLoginRefused as refusal:
            raise _Refused(refusal.message) from None
        except ApplicationError as error:
            raise PermissionDenied(error.message) from None
        login(request, user, backend="allauth.account.auth_backends.AuthenticationBackend")
        # [!!] This sign-on vouches for this organization only, and only until the
        # IdP's SessionNotOnOrAfter (accounts.access decides what it opens).
        sign_in_record_sso(
            request, user=user, organization=self.organization, not_on_or_after=self.session_not_on_or_after
        )
        return user

    def custom_redirect(self, user, relay_state, session_info):
        return reverse("accounts:dashboard", kwargs={"org_slug": self.organization.slug})
