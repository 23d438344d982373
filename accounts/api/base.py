"""The API's tenancy base view.

[!!] The organization comes from the credential, never from the URL or the
body: every API credential is bound to exactly one organization. Each
authentication class builds the caller's Principal once (accounts/principals.py)
as ``request.auth``, after the one access check (accounts/access.py) for
people; ``initial()`` takes the organization and the role from it, before
permissions and the handler run.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from rest_framework.exceptions import NotAuthenticated
from rest_framework.views import APIView

from accounts.models import OrganizationStatus
from accounts.principals import Principal
from accounts.api_keys.authentication import ApiKeyAuthentication
from accounts.jwt.authentication import OrganizationJWTAuthentication
from accounts.oauth.authentication import OAuthAccessTokenAuthentication
from accounts.api.session import OrganizationSessionAuthentication
from accounts.scopes import OrganizationScopePermission
from accounts.tenancy import get_for_org_or_404
from jagcall.kernel.api import idempotency

_SEALED = ("initial", "get_queryset", "get_object", "get_permissions")


class OrganizationAPIView(APIView):
    """Base of every tenant API view.

    Subclasses implement ``get_org_queryset()`` (already scoped by the caller
    through ``self.get_scoped_queryset()``) and declare the scope each method
    needs in ``required_scopes`` (accounts/scopes.py); the one check is
    OrganizationScopePermission. API keys (``jc_live_…``) and JWTs are both
    accepted in ``Authorization: Bearer``; a signed-in portal session is
    accepted with its CSRF token and an ``X-Organization`` header
    (accounts/api/session.py). A POST may carry an
    ``Idempotency-Key`` (jagcall/kernel/api/idempotency.py): checked last in
    ``initial()``, its result stored in ``finalize_response()``.
    """

    _idempotency_claim = None

    authentication_classes = [
        ApiKeyAuthentication,
        OAuthAccessTokenAuthentication,
        OrganizationJWTAuthentication,
        OrganizationSessionAuthentication,
    ]
    permission_classes = [OrganizationScopePermission]
    # The defaults mirror the table's defaults: reading is organization.view,
    # writing organization.update. Views narrow them to their own resource.
    required_scopes: dict[str, str] = {
        "GET": "organization:read",
        "POST": "organization:write",
        "PUT": "organization:write",
        "PATCH": "organization:write",
        "DELETE": "organization:write",
    }

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in _SEALED:
            if name in cls.__dict__:
                raise ImproperlyConfigured(f"{cls.__name__} must not override {name}(); implement get_org_queryset().")

    def initial(self, request, *args, **kwargs):
        self.format_kwarg = self.get_format_suffix(**kwargs)
        neg = self.perform_content_negotiation(request)
        request.accepted_renderer, request.accepted_media_type = neg
        version, scheme = self.determine_version(request, *args, **kwargs)
        request.version, request.versioning_scheme = version, scheme
        self.perform_authentication(request)
        principal = request.auth
        organization = getattr(principal, "organization", None)
        if not isinstance(principal, Principal) or organization is None or organization.status != OrganizationStatus.ACTIVE:
            raise NotAuthenticated("Authenticate with a credential bound to an active organization.")
        request.organization = self.organization = organization
        request._request.organization = organization  # for middleware (audit of refusals) after the view
        request.principal = request._request.principal = principal
        request.membership_role = principal.role
        self.check_permissions(request)
        self.check_throttles(request)
        self._idempotency_claim = idempotency.begin(request)

    def handle_exception(self, exc):
        if isinstance(exc, idempotency.Replay):
            return exc.response
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        claim, self._idempotency_claim = self._idempotency_claim, None
        idempotency.finish(claim, response)
        return response

    def get_permissions(self):
        return [permission() for permission in self.permission_classes]

    def get_org_queryset(self):
        raise NotImplementedError(f"{type(self).__name__} must implement get_org_queryset()")

    def get_queryset(self):
        return self.get_org_queryset().for_org(self.organization)

    def get_object(self, **lookup):
        return get_for_org_or_404(self.get_org_queryset(), organization=self.organization, **lookup)
