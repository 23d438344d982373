from django import forms
from django.contrib.auth.forms import AuthenticationForm

from accounts.permissions import Role


class EmailAuthenticationForm(AuthenticationForm):
    username = forms.EmailField(
        label="Email", widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})
    )
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That email and password do not match an account. Check both and try again.",
    }


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


class InvitationSignupForm(forms.Form):
    name = forms.CharField(max_length=150, label="Your name")
    password = forms.CharField(
        label="Choose a password",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 12 characters; avoid common passwords.",
    )
