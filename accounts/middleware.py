"""The back office requires two-factor sign-in for every staff user, always."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect


class BackOfficeTwoFactorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.prefix = "/" + settings.ADMIN_URL

    def __call__(self, request):
        user = getattr(request, "user", None)
        if request.path.startswith(self.prefix) and user is not None and user.is_authenticated and user.is_staff:
            from accounts.mfa import user_has_two_factor

            if not user_has_two_factor(user):
                messages.warning(request, "The back office needs two-factor sign-in. Set it up here, then open the back office again.")
                return redirect("mfa_index")
        return self.get_response(request)


class SessionTimeoutMiddleware:
    """Idle and absolute session timeouts (SESSION_IDLE_TIMEOUT, SESSION_ABSOLUTE_TIMEOUT, seconds).

    The sign-in time is recorded at login; the last-seen time at most once a
    minute, so an active session does not write to Redis on every request.
    """

    AUTH_AT = "_jc_auth_at"
    SEEN_AT = "_jc_seen_at"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        import time

        from django.contrib.auth import logout

        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now = time.time()
            session = request.session
            auth_at = session.get(self.AUTH_AT)
            seen_at = session.get(self.SEEN_AT, auth_at)
            if auth_at is None:
                session[self.AUTH_AT] = session[self.SEEN_AT] = now
            else:
                idle = now - (seen_at or now)
                if now - auth_at > settings.SESSION_ABSOLUTE_TIMEOUT or idle > settings.SESSION_IDLE_TIMEOUT:
                    from accounts.security_events import emit

                    emit("user.session_expired", request=request, user=user, idle_seconds=int(idle))
                    logout(request)
                    messages.info(request, "You were signed out after a period of inactivity. Please sign in again.")
                    return redirect(f"{settings.LOGIN_URL_PATH}?next={request.path}")
                if now - (seen_at or 0) > 60:
                    session[self.SEEN_AT] = now
        return self.get_response(request)
