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
