"""Security events: one structured record per identity event.

Every login, failed login, logout, registration, password reset and email
verification is emitted once, here, with the user, organization, IP address
and user agent. It is logged to the "jagcall.security" logger (JSON in
production) and handed to the audit log through accounts' one outlet
(accounts.activity.audit), with the resource it is about stated here.
"""

from __future__ import annotations

import logging

from django.dispatch import receiver

from accounts.activity import audit

logger = logging.getLogger("jagcall.security")


def client_ip(request) -> str | None:
    if request is None:
        return None
    from allauth.account.adapter import get_adapter

    try:
        return get_adapter(request).get_client_ip(request)
    except Exception:  # a missing REMOTE_ADDR must not break the flow being recorded
        return request.META.get("REMOTE_ADDR")


# The resource each family of security events is about, stated here by accounts (the
# events' owner) as (resource type, the detail that holds its id); events of a person
# alone are about that person. compliance records what it is given.
EVENT_RESOURCES: dict[str, tuple[str, str]] = {
    "api_key.": ("api_key", "api_key_id"),
    "api.token": ("api_token", "jti"),
    "oauth.": ("oauth_application", "application_id"),
    "sso.configured": ("saml_configuration", "organization_id"),
}


def _resource(kind: str, event: dict) -> tuple[str, str]:
    for prefix, (resource_type, key) in EVENT_RESOURCES.items():
        if kind.startswith(prefix) and (event.get(key) or (key == "api_key_id" and event.get("prefix"))):
            return resource_type, str(event.get(key) or event.get("prefix"))
    if event.get("user_id"):
        return "user", event["user_id"]
    return "", ""


def emit(
    kind: str, *, request=None, user=None, email: str | None = None, organization=None, actor=None, **details
) -> dict:
    """Log a security event and hand it to the audit log (accounts.activity.audit).

    ``actor`` is the Principal that acted, where one did (a key creating a key,
    an owner changing a rule); without one, the event is about ``user`` acting
    for themselves, or about nobody signed in.
    """
    if request is None:  # a service called without it: the request being handled, if any
        from jagcall.kernel.logging import current_request

        request = current_request()
    event = {
        "event": kind,
        "user_id": str(user.pk) if user is not None and getattr(user, "pk", None) else None,
        "email": email or (getattr(user, "email", None) if user is not None else None),
        "organization_id": str(organization.pk) if organization is not None else None,
        "ip": client_ip(request),
        "user_agent": (request.META.get("HTTP_USER_AGENT", "")[:300] if request is not None else None),
        "request_id": getattr(request, "request_id", None),
        **details,
    }
    event["resource_type"], event["resource_id"] = _resource(kind, event)
    logger.info(kind, extra={"security_event": event})
    audit.send(sender=None, kind="security", event=event, actor=actor)
    return event


# --- receivers for Django's and allauth's own signals ------------------------------

from allauth.account import signals as account_signals  # noqa: E402
from django.contrib.auth import signals as auth_signals  # noqa: E402


@receiver(auth_signals.user_logged_in)
def _logged_in(sender, request, user, **kwargs):
    import time

    if request is not None and hasattr(request, "session"):
        # Start the idle and absolute timeouts (accounts.middleware.SessionTimeoutMiddleware).
        request.session["_jc_auth_at"] = request.session["_jc_seen_at"] = time.time()
    emit("user.login", request=request, user=user)


@receiver(auth_signals.user_logged_out)
def _logged_out(sender, request, user, **kwargs):
    emit("user.logout", request=request, user=user)
    if user is not None:
        from accounts.consumers import access_recheck_user

        access_recheck_user(user.pk)  # the websockets of the ended session close


@receiver(auth_signals.user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs):
    # Never the password; the email as typed is what an investigator needs.
    emit("user.login_failed", request=request, email=(credentials or {}).get("email") or (credentials or {}).get("username"))


@receiver(account_signals.user_signed_up)
def _signed_up(sender, request, user, **kwargs):
    emit("user.registered", request=request, user=user)


@receiver(account_signals.password_reset)
def _password_reset(sender, request, user, **kwargs):
    emit("user.password_reset_completed", request=request, user=user)


@receiver(account_signals.password_changed)
def _password_changed(sender, request, user, **kwargs):
    emit("user.password_changed", request=request, user=user)


@receiver(account_signals.email_confirmed)
def _email_confirmed(sender, request, email_address, **kwargs):
    emit("user.email_verified", request=request, user=email_address.user, email=email_address.email)


@receiver(account_signals.password_set)
def _password_set(sender, request, user, **kwargs):
    emit("user.password_set", request=request, user=user)


@receiver(account_signals.email_added)
def _email_added(sender, request, user, email_address, **kwargs):
    emit("user.email_added", request=request, user=user, address=email_address.email)


@receiver(account_signals.email_removed)
def _email_removed(sender, request, user, email_address, **kwargs):
    emit("user.email_removed", request=request, user=user, address=email_address.email)


@receiver(account_signals.email_changed)
def _email_changed(sender, request, user, from_email_address, to_email_address, **kwargs):
    emit(
        "user.email_primary_changed",
        request=request,
        user=user,
        previous=getattr(from_email_address, "email", None),
        address=to_email_address.email,
    )


@receiver(account_signals.authentication_step_completed)
def _step_completed(sender, request, user, method, **kwargs):
    # Sign-ins are recorded by user_logged_in; a step that confirms an already signed-in
    # person (before a sensitive change) is recorded here.
    if kwargs.get("reauthenticated"):
        emit("user.reauthenticated", request=request, user=user, method=method)


def _connect_session_revocation() -> None:
    from allauth.usersessions.models import UserSession
    from django.db.models.signals import post_delete

    def revoked(sender, instance, **kwargs):
        from allauth.core import context

        request = context.request
        current = getattr(getattr(request, "session", None), "session_key", None) if request is not None else None
        if instance.session_key != current:  # ending one's own session is a logout, recorded as such
            emit("user.session_revoked", request=request, user=instance.user, session_ip=instance.ip)

    post_delete.connect(revoked, sender=UserSession, weak=False, dispatch_uid="jagcall-session-revoked")


_connect_session_revocation()
