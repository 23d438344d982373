"""How django-allauth's account flows fit JagCall."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter

from accounts.security_events import emit


class AccountAdapter(DefaultAccountAdapter):
    def send_password_reset_mail(self, user, email, context):
        emit("user.password_reset_requested", request=context.get("request"), user=user, email=email)
        return super().send_password_reset_mail(user, email, context)

    def send_mail(self, template_prefix, email, context):
        context = {**context, "site_name": "JagCall"}
        return super().send_mail(template_prefix, email, context)
