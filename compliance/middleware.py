"""Refused requests become audit events: 403 and 404 on an organization's pages and on the API.

A person probing another organization's ids (portal or API), a member
trying a manager's page, a credential without the scope: each answer is
recorded as ``access.denied`` with outcome ``denied``, the route and the
method. It is written to the chain of the organization the caller acted as
(the API credential's, or the portal page's when the caller belongs to it)
and otherwise to the platform chain, so one organization's log never names
people of another.

Only routed requests count (a mistyped address is not an attempt on
anything), and only on organization pages (``/o/<slug>/…``) and the API.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("jagcall.audit")

DENIED_STATUSES = frozenset({403, 404})


class AuditDenialsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code in DENIED_STATUSES:
            match = getattr(request, "resolver_match", None)
            if match is not None and (match.kwargs.get("org_slug") or request.path.startswith("/api/")):
                self._record(request, response, match)
        return response

    @staticmethod
    def _record(request, response, match) -> None:
        from compliance.services import audit_record

        organization = getattr(request, "organization", None)
        slug = match.kwargs.get("org_slug")
        if organization is None and slug and getattr(request.user, "is_authenticated", False):
            # A member refused a page of their own organization: their organization's log shows it.
            from accounts.models import Organization
            from accounts.selectors import membership_for_user

            candidate = Organization.objects.filter(slug=slug).first()
            if candidate is not None and membership_for_user(organization=candidate, user=request.user):
                organization = candidate
        metadata = {
            "route": match.view_name,
            "method": request.method,
            "status": response.status_code,
            "path": request.path[:300],
        }
        if organization is None and match.kwargs.get("org_slug"):
            metadata["organization_slug"] = str(match.kwargs["org_slug"])[:60]
        object_ids = {k: str(v) for k, v in match.kwargs.items() if k != "org_slug"}
        audit_record(
            action="access.denied",
            organization=organization,
            request=request,
            outcome="denied",
            resource_type=match.url_name.replace("-", "_")[:60] if match.url_name else "",
            resource_id=next(iter(object_ids.values()), ""),
            metadata=metadata,
        )
