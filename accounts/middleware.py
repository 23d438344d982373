"""Session rules that run before any view: the back office's guard, and when a session ends."""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.shortcuts import redirect
from django.urls import reverse

from accounts.access import SESSION_AUTH_AT, SESSION_SEEN_AT, AccessDenied, session_idle_expired, sso_sign_in_ended, staff_access


class BackOfficeTwoFactorMiddleware:
    """[!!] The back office opens only to support staff whose session passed the platform's own second factor.

    Having a factor enrolled is not enough: this session must have confirmed
    it (accounts.access.staff_access). Staff without a factor are sent to set
    one up; staff with one are asked to confirm it.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.prefix = "/" + settings.ADMIN_URL

    def __call__(self, request):
        user = getattr(request, "user", None)
        if request.path.startswith(self.prefix) and user is not None and user.is_authenticated and user.is_staff:
            try:
                staff_access(request)
            except AccessDenied as denial:
                from accounts.mfa import user_has_two_factor

                messages.warning(request, denial.message)
                target = "mfa_reauthenticate" if user_has_two_factor(user) else "mfa_index"
                return redirect(f"{reverse(target)}?next={request.path}")
        return self.get_response(request)


class SessionTimeoutMiddleware:
    """Idle and absolute session timeouts (SESSION_IDLE_TIMEOUT, SESSION_ABSOLUTE_TIMEOUT, seconds),
    and the end of a session opened only by single sign-on (the assertion's SessionNotOnOrAfter).

    The sign-in time is recorded at login; the last-seen time at most once a
    minute, so an active session does not write to Redis on every request.
    """

    AUTH_AT = SESSION_AUTH_AT
    SEEN_AT = SESSION_SEEN_AT

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now = time.time()
            session = request.session
            auth_at = session.get(self.AUTH_AT)
            if auth_at is None:
                session[self.AUTH_AT] = session[self.SEEN_AT] = now
            else:
                from accounts.security_events import emit

                if session_idle_expired(session, now=now):
                    idle = now - (session.get(self.SEEN_AT, auth_at) or now)
                    emit("user.session_expired", request=request, user=user, idle_seconds=int(idle))
                    logout(request)
                    messages.info(request, "You were signed out after a period of inactivity. Please sign in again.")
                    return redirect(f"{settings.LOGIN_URL_PATH}?next={request.path}")
                if sso_sign_in_ended(request, now=now):
                    emit("user.session_expired", request=request, user=user, reason="sso_session_ended")
                    logout(request)
                    messages.info(request, "Your single sign-on session has ended. Sign in again.")
                    return redirect(f"{settings.LOGIN_URL_PATH}?next={request.path}")
                if now - (session.get(self.SEEN_AT) or 0) > 60:
                    session[self.SEEN_AT] = now
        return self.get_response(request)
