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

DENIED_STATUSES = frozenset({403, 404})


class AuditDenialsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code in DENIED_STATUSES:
            match = getattr(request, "resolver_match", None)
            if match is not None and (match.kwargs.get("org_slug") or request.path.startswith("/api/")):
                from compliance.services import audit_record_denial

                audit_record_denial(request=request, status=response.status_code)
        return response
