"""Messaging's portal forms, grouped by page. Every rule is a service's: forms only turn inputs into values."""

from __future__ import annotations

from django import forms

from messaging.services.contacts import MAX_CUSTOM_FIELDS, MAX_NOTES
from messaging.services.sending import MAX_BODY
from telephony.models import PhoneNumber

# --- contacts ---------------------------------------------------------------------------------


class ContactSearchForm(forms.Form):
    q = forms.CharField(
        required=False,
        max_length=100,
        label="Search contacts",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "A name, or a whole number like +14155550100"}),
    )


class ContactForm(forms.Form):
    """A contact's fields; custom fields are typed one per line as ``name: value``."""

    phone = forms.CharField(
        max_length=40,
        label="Phone number",
        help_text="In international format with the country code, e.g. +14155550100.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "inputmode": "tel"}),
    )
    name = forms.CharField(required=False, max_length=120, widget=forms.TextInput(attrs={"autocomplete": "off"}))
    time_zone = forms.CharField(
        required=False,
        max_length=64,
        label="Time zone",
        help_text="An IANA name such as America/New_York. Leave it empty to use the number's own time zone, "
        "when it has only one.",
        widget=forms.TextInput(attrs={"list": "time-zones", "autocomplete": "off"}),
    )
    custom_fields = forms.CharField(
        required=False,
        label="Custom fields",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Plan: Gold\nCustomer since: 2021"}),
        help_text=f"One per line, as “name: value” (up to {MAX_CUSTOM_FIELDS}).",
    )
    notes = forms.CharField(
        required=False,
        max_length=MAX_NOTES,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Only your team sees them. Stored encrypted.",
    )

    def clean_custom_fields(self) -> dict[str, str]:
        fields: dict[str, str] = {}
        for number, line in enumerate(self.cleaned_data.get("custom_fields", "").splitlines(), start=1):
            if not line.strip():
                continue
            name, colon, value = line.partition(":")
            if not colon or not name.strip():
                raise forms.ValidationError(
                    f"Line {number}: write the field's name, a colon, then its value, e.g. “Plan: Gold”."
                )
            if name.strip() in fields:
                raise forms.ValidationError(f"Line {number}: “{name.strip()}” is already on an earlier line.")
            fields[name.strip()] = value.strip()
        return fields

    @staticmethod
    def initial_for(contact) -> dict:
        return {
            "phone": contact.phone,
            "name": contact.name,
            "time_zone": contact.time_zone,
            "notes": contact.notes,
            "custom_fields": "\n".join(f"{name}: {value}" for name, value in (contact.custom_fields or {}).items()),
        }


class ContactImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="The first row names the columns: phone (required), name, time_zone, notes; any other column "
        "becomes a custom field.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,.tsv,text/csv"}),
    )

    @classmethod
    def refused(cls, message: str) -> "ContactImportForm":
        """The form shown again when the upload itself was refused before it could be read (too large)."""
        form = cls(data={}, files={})
        form.is_valid()
        form.errors["file"] = form.error_class([message])
        return form


# --- inbox: the composer, a new message, a simulated incoming text -------------------------------

MARKETING_HELP = (
    "Outside those hours a marketing text is refused, not held for later. Replies, and reminders the person asked "
    "for, are not marketing."
)


def sms_numbers(organization):
    """The organization's numbers that can send and receive texts now."""
    numbers = PhoneNumber.objects.for_org(organization).filter(released_at__isnull=True, sms_enabled=True)
    return numbers.order_by("number")


def number_label(number: PhoneNumber) -> str:
    """The number, and its name when it is more than the number written another way ("(415) 555-0123")."""
    name = (number.friendly_name or "").strip()
    digits = "".join(ch for ch in name if ch.isdigit())
    if not name or (digits and number.number.endswith(digits) and not any(ch.isalpha() for ch in name)):
        return number.number
    return f"{number.number} · {name}"


class MessageBodyMixin(forms.Form):
    body = forms.CharField(
        label="Message",
        strip=False,
        error_messages={"required": "Write a message before sending."},
        widget=forms.Textarea(attrs={"rows": 4, "data-segment-input": "", "autocomplete": "off"}),
    )
    marketing = forms.BooleanField(
        required=False,
        label="This is a marketing text (sent only 08:00–21:00 in the recipient's time)",
        help_text=MARKETING_HELP,
    )

    def clean_body(self):
        # A browser sends a textarea's line breaks as CRLF; a text carries LF, as the composer counts it.
        body = self.cleaned_data["body"].replace("\r\n", "\n")
        if not body.strip():
            raise forms.ValidationError("Write a message before sending.")
        if len(body) > MAX_BODY:
            raise forms.ValidationError(f"The message is {len(body)} characters long; a text is at most {MAX_BODY}.")
        return body


class ThreadReplyForm(MessageBodyMixin):
    """The composer of a thread: the conversation fixes who sends and who receives."""


class MessageComposeForm(MessageBodyMixin):
    """A new message: one of the organization's SMS-capable numbers, a recipient, the text."""

    from_number = forms.ModelChoiceField(
        queryset=PhoneNumber.objects.none(),
        empty_label=None,
        label="From",
        help_text="One of your SMS-capable numbers: the recipient sees it and replies to it.",
        error_messages={"invalid_choice": "Choose one of your numbers that can send texts."},
    )
    to = forms.CharField(
        label="To",
        max_length=40,
        help_text="The recipient's number in international format (E.164), e.g. +14155550100.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "inputmode": "tel", "placeholder": "+14155550100"}),
    )

    field_order = ["from_number", "to", "body", "marketing"]

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["from_number"].queryset = sms_numbers(organization)
        self.fields["from_number"].label_from_instance = number_label


class SimulateTextForm(forms.Form):
    """Simulated mode: a text someone sends to one of the organization's numbers."""

    phone_number = forms.ModelChoiceField(
        queryset=PhoneNumber.objects.none(),
        empty_label=None,
        label="To",
        help_text="Which of your numbers receives the text.",
        error_messages={"invalid_choice": "Choose one of your numbers that can receive texts."},
    )
    from_number = forms.CharField(
        label="From",
        max_length=40,
        help_text="The simulated person's number, in international format.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "inputmode": "tel"}),
    )
    body = forms.CharField(
        label="Their text",
        strip=False,
        max_length=MAX_BODY,
        error_messages={"required": "Write the text the simulated person sends."},
        widget=forms.Textarea(attrs={"rows": 2, "autocomplete": "off"}),
    )
    # Where the person came from: a thread (its id) or the inbox (empty); only an id of the organization is used.
    conversation = forms.UUIDField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["phone_number"].queryset = sms_numbers(organization)
        self.fields["phone_number"].label_from_instance = number_label

    def clean_body(self):
        return self.cleaned_data["body"].replace("\r\n", "\n")
