from __future__ import annotations

from django import forms

from accounts.sso.saml import MAX_METADATA_CHARS


class SsoSettingsForm(forms.Form):
    """The owner's single sign-on settings (organization settings, accounts.views.OrganizationSsoView)."""

    metadata_xml = forms.CharField(
        label="Identity provider metadata (XML)",
        widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false"}),
        max_length=MAX_METADATA_CHARS,
        help_text="Download the SAML metadata file from your identity provider and paste all of it here.",
    )
    metadata_url = forms.URLField(
        label="Metadata address (optional)",
        required=False,
        assume_scheme="https",
        help_text="Kept for reference only; JagCall uses the metadata pasted above.",
    )
    enabled = forms.BooleanField(label="Turn on single sign-on", required=False)
    require_sso = forms.BooleanField(
        label="Require single sign-on",
        required=False,
        help_text="Members and admins can then sign in only through your identity provider. Owners keep their password.",
    )


class SsoDomainForm(forms.Form):
    """An email domain the owner claims for single sign-on (accounts.sso.services.sso_domain_add)."""

    domain = forms.CharField(
        label="Email domain",
        max_length=253,
        widget=forms.TextInput(attrs={"placeholder": "acme.com", "autocomplete": "off", "spellcheck": "false"}),
        help_text="The part of your team's email addresses after the @. Add each domain they use.",
    )


class SsoDomainChoiceForm(forms.Form):
    """Which of the organization's domains a Verify or Remove button means."""

    domain_id = forms.UUIDField()
