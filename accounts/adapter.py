"""How django-allauth's account flows fit JagCall."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter

from accounts.security_events import emit

SSO_REQUIRED_MESSAGE = "Sign in through your organization's single sign-on."


class AccountAdapter(DefaultAccountAdapter):
    def pre_login(self, request, user, **kwargs):
        # Single sign-on logs in outside allauth, so every login reaching here is a
        # non-SSO one. It is refused when it could open none of the person's
        # organizations (each requires its single sign-on of them; owners keep their
        # password as break-glass). Otherwise it goes on, and each organization that
        # requires its sign-on still refuses this session (accounts.access).
        from accounts.sso.selectors import password_opens_nothing

        organization = password_opens_nothing(user) if user.is_active else None
        if organization is not None:
            from allauth.account.internal.stagekit import clear_login
            from django.shortcuts import render

            clear_login(request)
            emit("user.login_refused", request=request, user=user, organization=organization, reason="sso_required")
            return render(
                request,
                "accounts/sso_required.html",
                {"message": SSO_REQUIRED_MESSAGE, "sso_organization": organization},
                status=403,
            )
        return super().pre_login(request, user, **kwargs)

    def send_password_reset_mail(self, user, email, context):
        emit("user.password_reset_requested", request=context.get("request"), user=user, email=email)
        return super().send_password_reset_mail(user, email, context)

    def send_mail(self, template_prefix, email, context):
        context = {**context, "site_name": "JagCall"}
        return super().send_mail(template_prefix, email, context)
