from __future__ import annotations

from django import forms

from accounts.scopes import scope_choices


class ApiKeyCreateForm(forms.Form):
    """Name, scopes (only those the creator's role allows) and an optional expiry."""

    EXPIRY_CHOICES = [("", "Never"), ("30", "In 30 days"), ("90", "In 90 days"), ("365", "In a year")]

    name = forms.CharField(max_length=100, label="Name", help_text="Where the key is used, e.g. “CRM sync”.")
    scopes = forms.MultipleChoiceField(label="Scopes", widget=forms.CheckboxSelectMultiple)
    expires_in_days = forms.TypedChoiceField(
        choices=EXPIRY_CHOICES, coerce=int, empty_value=None, required=False, label="Expires"
    )

    def __init__(self, *args, allowed_scopes=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["scopes"].choices = [(scope, f"{scope} — {label}") for scope, label in scope_choices(allowed_scopes)]
