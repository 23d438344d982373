from allauth.account.forms import SignupForm as AllauthSignupForm
from django import forms
from django.conf import settings
from django.db import transaction

from accounts import services
from accounts.api_keys.services import KeyDisposition
from accounts.permissions import Role
from jagcall.kernel.errors import ApplicationError


class OrganizationCreateForm(forms.Form):
    name = forms.CharField(max_length=120, label="Organization name", help_text="Your business, as your team knows it.")
    slug = forms.SlugField(
        max_length=60,
        required=False,
        label="Short name (optional)",
        help_text="Used in web addresses: lowercase letters, digits and hyphens. Leave empty to make one from the name.",
    )


class OrganizationSettingsForm(forms.Form):
    name = forms.CharField(max_length=120, label="Organization name")


class InvitationForm(forms.Form):
    email = forms.EmailField(label="Email address", widget=forms.EmailInput(attrs={"autocomplete": "off"}))
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER, label="Role")

    def __init__(self, *args, allow_owner: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not allow_owner:
            self.fields["role"].choices = [c for c in Role.choices if c[0] != Role.OWNER]


class RoleChangeForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
    # On a demotion: what happens to the API keys the member created (accounts.api_keys.services).
    api_keys = forms.ChoiceField(choices=KeyDisposition.CHOICES, required=False)


class MembershipRemoveForm(forms.Form):
    api_keys = forms.ChoiceField(choices=KeyDisposition.CHOICES, required=False)


class InvitationSignupForm(forms.Form):
    name = forms.CharField(max_length=150, label="Your name")
    password = forms.CharField(
        label="Choose a password",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 12 characters; avoid common passwords.",
    )


class SignupForm(AllauthSignupForm):
    """Registration: email, password and the organization the new user will own.

    [!!] With Turnstile enabled, the widget's token is verified server-side
    before anything is created; a missing, expired, replayed or foreign
    token refuses the registration (fail closed).
    """

    organization_name = forms.CharField(
        max_length=120,
        label="Organization name",
        help_text="Your business, as your team knows it. You can invite your team next.",
        widget=forms.TextInput(attrs={"autocomplete": "organization"}),
    )
    field_order = ["organization_name", "email", "password1", "password2"]

    def clean(self):
        cleaned = super().clean()
        if settings.TURNSTILE_ENABLED and not self.errors:
            from allauth.core import context

            from accounts.providers.turnstile import turnstile_verify
            from accounts.security_events import client_ip

            request = context.request
            try:
                turnstile_verify(
                    token=self.data.get("cf-turnstile-response", ""),
                    remote_ip=client_ip(request),
                    action="signup",
                )
            except ApplicationError as error:
                raise forms.ValidationError(error.message, code=error.code) from None
        return cleaned

    def save(self, request):
        with transaction.atomic():
            user = super().save(request)
            services.organization_create(name=self.cleaned_data["organization_name"], owner=user)
        return user


