"""Portal forms for an organization's own provider accounts."""

from __future__ import annotations

from django import forms

from integrations.models import Provider
from integrations.services import FIELDS


class ProviderCredentialForm(forms.Form):
    """The fields one provider needs; secrets are never rendered back into the page."""

    provider = forms.ChoiceField(choices=Provider.choices, widget=forms.HiddenInput)

    def __init__(self, *args, provider: str, **kwargs):
        kwargs.setdefault("auto_id", f"id_{provider}_%s")  # five forms on one page: ids stay unique
        super().__init__(*args, initial={"provider": provider}, **kwargs)
        self.provider = provider
        for spec in FIELDS[provider]:
            widget = (
                forms.PasswordInput(render_value=False, attrs={"autocomplete": "off", "spellcheck": "false"})
                if spec.secret
                else forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "placeholder": "AC…"})
            )
            self.fields[spec.name] = forms.CharField(label=spec.label, max_length=500, widget=widget)

    def values(self) -> dict[str, str]:
        return {spec.name: self.cleaned_data[spec.name] for spec in FIELDS[self.provider]}
