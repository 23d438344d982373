"""The audit log's filters: one FilterSet for the portal form and the API's query parameters."""

from __future__ import annotations

import datetime as dt

import django_filters
from django import forms
from django.core.validators import RegexValidator
from django.utils import timezone

from compliance.models import ActorType, AuditEvent, DoNotCallReason, Outcome

ACTION_FILTER = RegexValidator(
    r"^[a-z0-9_]+(\.[a-z0-9_]*)*\*?$", "An action like member.removed, or a prefix like member. or member.*"
)
RESOURCE_TYPE = RegexValidator(r"^[a-z0-9_]+$", "A resource type like api_key or membership.")


class DateOrDateTimeField(forms.DateTimeField):
    """An ISO 8601 date-time, or a date (2025-01-31). With ``end_of_day``, a bare date means the end of that day."""

    def __init__(self, *args, end_of_day: bool = False, **kwargs):
        self.end_of_day = end_of_day
        super().__init__(*args, **kwargs)

    def to_python(self, value):
        if isinstance(value, str):
            value = value.strip()
            try:
                day = dt.date.fromisoformat(value)
            except ValueError:
                pass
            else:
                start = dt.datetime.combine(day, dt.time.min, tzinfo=dt.timezone.utc)
                return start + dt.timedelta(days=1) if self.end_of_day else start
        result = super().to_python(value)
        if result is None:
            return None
        if timezone.is_naive(result):
            return timezone.make_aware(result, dt.timezone.utc)
        # Python reads offsets up to ±23:59, PostgreSQL only up to ±15:59: compare in UTC.
        try:
            return result.astimezone(dt.timezone.utc)
        except OverflowError:
            raise forms.ValidationError("Enter a date and time within years 1 to 9999.", code="invalid") from None


class DateOrDateTimeFilter(django_filters.Filter):
    field_class = DateOrDateTimeField


class IPAddressFilter(django_filters.Filter):
    field_class = forms.GenericIPAddressField


class AuditEventFilterSet(django_filters.FilterSet):
    """Filters of the audit log. ``filter_queryset`` delegates to the selector, so both paths filter alike.

    - actor: a person's id, an API key (``jc_live_<prefix>``), or text found in the actor's email or name
    - action: exact (``member.removed``) or a prefix (``member.`` / ``member.*``)
    - since (inclusive) / until (exclusive; a bare date includes that whole day), UTC
    """

    actor = django_filters.CharFilter(label="Actor", max_length=254, help_text="Email, person id or jc_live_ key prefix")
    action = django_filters.CharFilter(
        label="Action", max_length=100, validators=[ACTION_FILTER], help_text="e.g. member.removed, or member. for all"
    )
    resource_type = django_filters.CharFilter(label="Resource type", max_length=60, validators=[RESOURCE_TYPE])
    resource_id = django_filters.CharFilter(label="Resource id", max_length=100)
    outcome = django_filters.ChoiceFilter(label="Outcome", choices=Outcome.choices, empty_label="Any outcome")
    actor_type = django_filters.ChoiceFilter(label="Actor type", choices=ActorType.choices, empty_label="Anyone")
    ip = IPAddressFilter(label="IP address")
    since = DateOrDateTimeFilter(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = DateOrDateTimeFilter(label="To", end_of_day=True, widget=forms.DateInput(attrs={"type": "date"}))

    class Meta:
        model = AuditEvent
        fields: list = []  # the filters above only

    def filter_queryset(self, queryset):
        from compliance.selectors import audit_event_filter

        return audit_event_filter(queryset, filters=self.form.cleaned_data)

    def cleaned_filters(self) -> dict:
        """The filters given, as clean values (call after is_valid())."""
        return {k: v for k, v in self.form.cleaned_data.items() if v not in (None, "")}

    def clean_range(self):
        data = self.form.cleaned_data
        since, until = data.get("since"), data.get("until")
        if since and until and since >= until:
            self.form.add_error("until", "The end of the range must be after its start.")

    def is_valid(self) -> bool:
        if not super().is_valid():
            return False
        self.clean_range()
        return not self.form.errors


class DoNotCallAddForm(forms.Form):
    """Add one number to the do-not-call list (the service checks the number and says what is wrong)."""

    number = forms.CharField(
        label="Phone number",
        max_length=40,
        help_text="International format with the country code, e.g. +14155550100.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "inputmode": "tel", "placeholder": "+14155550100"}),
    )
    reason = forms.ChoiceField(label="Reason", choices=DoNotCallReason.choices, initial=DoNotCallReason.REQUESTED)
