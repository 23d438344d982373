from __future__ import annotations

from django import forms

from accounts.oauth.models import Application


def _name_field() -> forms.CharField:
    return forms.CharField(
        max_length=100,
        label="Name",
        error_messages={"required": "Give the application a name: people see it when they are asked to connect it."},
        help_text="Shown to people when they are asked to connect it, e.g. “Acme CRM”."
    )


def _redirect_uris_field() -> forms.CharField:
    return forms.CharField(
        label="Redirect URIs",
        error_messages={"required": "Add at least one redirect URI: where your application receives the code."},
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "autocomplete": "off"}),
        help_text=(
            "One per line: where people are sent back with the authorization code. Each must match exactly what "
            "your application sends. https is required, except http://127.0.0.1, http://[::1] and "
            "http://localhost for apps on the user's own computer."
        ),
    )


class ApplicationCreateForm(forms.Form):
    CLIENT_TYPE_CHOICES = [
        (
            Application.CLIENT_CONFIDENTIAL,
            "Confidential: runs on a server that can keep a secret (a web application's back end).",
        ),
        (
            Application.CLIENT_PUBLIC,
            "Public: runs on people's devices and cannot keep a secret (mobile, desktop or single-page apps).",
        ),
    ]

    name = _name_field()
    client_type = forms.ChoiceField(
        choices=CLIENT_TYPE_CHOICES,
        widget=forms.RadioSelect,
        initial=Application.CLIENT_CONFIDENTIAL,
        label="Client type",
    )
    redirect_uris = _redirect_uris_field()


class ApplicationUpdateForm(forms.Form):
    """Name and redirect URIs; the client type and the client ID never change."""

    name = _name_field()
    redirect_uris = _redirect_uris_field()

    @classmethod
    def for_application(cls, application: Application) -> "ApplicationUpdateForm":
        return cls(initial={"name": application.name, "redirect_uris": "\n".join(application.redirect_uri_list)})


class ConsentForm(forms.Form):
    """The person's answer on the consent screen, with the authorization request carried along.

    The carried fields are re-validated by the authorization endpoint on
    submit, so changing them in the page gains nothing.
    """

    # The person's choice: rendered as radios and boxes by the template, checked by oauth_consent_check.
    organization = forms.CharField(required=False, max_length=60)
    scopes = forms.Field(required=False, widget=forms.SelectMultiple)
    allow = forms.CharField(required=False)

    # The authorization request, as validated when the page was shown.
    client_id = forms.CharField(widget=forms.HiddenInput, max_length=255)
    redirect_uri = forms.CharField(widget=forms.HiddenInput, max_length=2000)
    response_type = forms.CharField(widget=forms.HiddenInput, max_length=20)
    scope = forms.CharField(widget=forms.HiddenInput, required=False, max_length=2000)
    state = forms.CharField(widget=forms.HiddenInput, required=False, max_length=2000)
    code_challenge = forms.CharField(widget=forms.HiddenInput, required=False, max_length=128)
    code_challenge_method = forms.CharField(widget=forms.HiddenInput, required=False, max_length=10)

    @property
    def allowed(self) -> bool:
        return self.data.get("allow") == "yes"

    def credentials(self) -> dict:
        """The authorization request's parameters, as the toolkit takes them."""
        data = self.cleaned_data
        credentials = {key: data[key] for key in ("client_id", "redirect_uri", "response_type")}
        for key in ("state", "code_challenge", "code_challenge_method"):
            if data.get(key):
                credentials[key] = data[key]
        return credentials
