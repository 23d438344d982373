"""Events that other code announces, turned into audit events by one service each.

Security events (accounts.security_events), accounts' changes
(accounts.activity), back-office changes (Django's LogEntry) and refused
requests (compliance.middleware). The receivers and the middleware only hand
over to these.
"""

from __future__ import annotations

import logging
import re

from compliance.actors import Actor, actor_from_request, resolve_actor
from compliance.models import ActorType, AuditEvent, Outcome

from compliance.services.audit import ACTION_FORMAT, _append, audit_changes, audit_record

logger = logging.getLogger("jagcall.audit")


# --- security events (accounts.security_events) --------------------------------------------

_EVENT_FIELDS = ("event", "user_id", "email", "organization_id", "ip", "user_agent", "request_id")


def _security_outcome(kind: str) -> str:
    verb = kind.rsplit(".", 1)[-1]
    if verb.endswith("failed") or verb.endswith("broken"):
        return Outcome.FAILED
    if verb.endswith(("refused", "rejected", "denied")):
        return Outcome.DENIED
    return Outcome.SUCCESS


def _security_action(kind: str) -> str:
    action = re.sub(r"[^a-z0-9_.]", "_", str(kind or "").lower()).strip("._")
    action = re.sub(r"\.+", ".", action)
    if not ACTION_FORMAT.match(action):
        action = f"security.{action.replace('.', '_') or 'event'}"
        if not ACTION_FORMAT.match(action):
            action = "security.event"
    return action


def _security_resource(kind: str, event: dict, details: dict) -> tuple[str, str]:
    if kind.startswith("api_key."):
        return "api_key", str(details.get("api_key_id") or details.get("prefix") or "")
    if kind.startswith("api.token"):
        return "api_token", str(details.get("jti") or "")
    if kind.startswith("oauth.") and details.get("application_id"):
        return "oauth_application", str(details["application_id"])
    if kind == "sso.configured":
        return "saml_configuration", str(event.get("organization_id") or "")
    if event.get("user_id"):
        return "user", str(event["user_id"])
    return "", ""


def _security_actor(kind: str, event: dict, details: dict) -> Actor:
    from accounts.models import User

    if kind == "api_key.rejected":
        return Actor.for_api_key_prefix(str(details.get("prefix") or ""))
    # An API key or OAuth application acting (e.g. a key creating another): the credential is the actor.
    from jagcall.kernel.logging import current_request

    request = current_request()
    credential = getattr(request, "auth", None) if request is not None else None
    if getattr(credential, "api_key", None) is not None or getattr(credential, "application", None) is not None:
        return actor_from_request(request)
    acting_id = details.get("actor_id")
    if acting_id:  # someone acted on the event's user (e.g. support disabled an account)
        acting = User.objects.filter(pk=acting_id).only("id", "email", "is_staff").first()
        if acting is not None:
            return Actor.support(acting) if acting.is_staff else Actor.for_user(acting)
        return Actor(type=ActorType.USER, key=f"user:{acting_id}")
    if event.get("user_id"):
        return Actor(
            type=ActorType.USER, label=event.get("email") or "", key=f"user:{event['user_id']}", user_id=event["user_id"]
        )
    if event.get("ip") is None and event.get("request_id") is None:
        return Actor.system()
    # Nobody signed in: the email as typed is what an investigator needs.
    return Actor.anonymous(label=event.get("email") or "")


def audit_record_security_event(*, event: dict) -> AuditEvent:
    """Record one security event (accounts.security_events.emit) as an audit event.

    The action is the event's name (``user.login_failed``); names ending in
    failed/broken are outcome ``failed``, refused/rejected/denied ``denied``.
    Sign-ins and other events about a person alone have no organization:
    they go to the platform chain.
    """
    kind = str(event.get("event") or "")
    details = {k: v for k, v in event.items() if k not in _EVENT_FIELDS}
    actor = _security_actor(kind, event, details)
    details.pop("actor_id", None)
    if event.get("email") and event.get("email") != actor.label:
        details["email"] = event["email"]
    resource_type, resource_id = _security_resource(kind, event, details)
    from jagcall.kernel.logging import current_request_id

    request_id = event.get("request_id") or current_request_id()
    return _append(
        organization_id=event.get("organization_id") or None,
        actor=actor,
        action=_security_action(kind),
        outcome=_security_outcome(kind),
        resource_type=resource_type,
        resource_id=resource_id,
        changes=None,
        metadata=details,
        ip=event.get("ip"),
        user_agent=event.get("user_agent") or "",
        request_id="" if request_id == "-" else request_id,
    )


# --- events announced by other code ---------------------------------------------------------


def audit_record_activity(
    *, action, organization, request, actor, resource_type, resource_id, before, after, metadata, outcome
) -> AuditEvent:
    """An accounts service's change (accounts.activity), in the service's transaction.

    Who did it is the request's credential (a person, an API key, an OAuth
    application, support staff in the back office); the service's ``actor``
    counts only outside a request (commands, tasks) or before anyone is
    signed in (accepting an invitation by creating the account).
    """
    who = actor_from_request(request) if request is not None else None
    if who is None or who.type == ActorType.ANONYMOUS:
        who = resolve_actor(actor, None)
    return audit_record(
        action=action,
        organization=organization,
        request=request,
        actor=who,
        resource_type=resource_type,
        resource_id=resource_id,
        outcome=outcome,
        changes=audit_changes(before or {}, after or {}) if (before or after) else None,
        metadata=metadata,
    )


ADMIN_VERBS = {1: "created", 2: "updated", 3: "deleted"}  # django.contrib.admin.models ADDITION, CHANGE, DELETION


def audit_record_admin_change(*, log_entry) -> AuditEvent | None:
    """One back-office add, change or delete (Django writes a LogEntry for each), as ``<model>.<verb>``.

    The organization is the object's own (or the object, for an
    organization); the actor is the staff member, recorded as support.
    """
    if log_entry.action_flag not in ADMIN_VERBS:
        return None
    from accounts.models import Organization
    from jagcall.kernel.logging import current_request

    model = log_entry.content_type.model_class() if log_entry.content_type_id else None
    organization = None
    if model is not None and log_entry.object_id:
        if model is Organization:
            organization = Organization.objects.filter(pk=log_entry.object_id).first()
        elif any(f.name == "organization" for f in model._meta.get_fields()):
            row = model._base_manager.filter(pk=log_entry.object_id).values("organization_id").first()
            if row is not None:
                organization = Organization.objects.filter(pk=row["organization_id"]).first()
    resource_type = model._meta.model_name if model is not None else "object"
    return audit_record(
        action=f"{resource_type}.{ADMIN_VERBS[log_entry.action_flag]}",
        organization=organization,
        request=current_request(),
        actor=Actor.support(log_entry.user),
        resource_type=resource_type,
        resource_id=str(log_entry.object_id or ""),
        metadata={"via": "back_office", "object": log_entry.object_repr, "change": log_entry.get_change_message()},
    )


def audit_record_denial(*, request, status: int) -> AuditEvent:
    """A refused request (403/404) on an organization's page or the API, as ``access.denied``.

    Written to the organization the caller acted as: the API credential's, or
    the page's when the caller belongs to it; otherwise to the platform chain,
    so a probe of another organization's ids never writes to that
    organization's log.
    """
    from accounts.models import Organization
    from accounts.selectors import membership_for_user

    match = request.resolver_match
    organization = getattr(request, "organization", None)
    slug = match.kwargs.get("org_slug")
    if organization is None and slug and getattr(request.user, "is_authenticated", False):
        candidate = Organization.objects.filter(slug=slug).first()
        if candidate is not None and membership_for_user(organization=candidate, user=request.user):
            organization = candidate  # a member refused a page of their own organization
    metadata = {"route": match.view_name, "method": request.method, "status": status, "path": request.path[:300]}
    if organization is None and slug:
        metadata["organization_slug"] = str(slug)[:60]
    object_ids = [str(v) for k, v in match.kwargs.items() if k != "org_slug"]
    return audit_record(
        action="access.denied",
        organization=organization,
        request=request,
        outcome=Outcome.DENIED,
        resource_type=match.url_name.replace("-", "_")[:60] if match.url_name else "",
        resource_id=object_ids[0] if object_ids else "",
        metadata=metadata,
    )
