"""Portal pages: the organization's calls (filtered list, 50 a page), a call's page, the dashboard's live panel."""

from __future__ import annotations

from datetime import date
from statistics import median

from django import forms
from django.shortcuts import render
from django.urls import path
from django.views import View

from accounts.mixins import OrganizationViewMixin
from jagcall.kernel.phone import InvalidPhoneNumber, parse_e164
from telephony.models import CallDirection, CallStatus
from telephony.selectors import calls as selectors


# The dates a filter may name: far enough for any call, near enough that the day after still exists.
FIRST_DATE, LAST_DATE = date(2000, 1, 1), date(9998, 12, 31)


class CallFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *CallStatus.choices])
    direction = forms.ChoiceField(required=False, choices=[("", "Both directions"), *CallDirection.choices])
    agent = forms.ChoiceField(required=False)
    number = forms.CharField(
        required=False,
        max_length=32,
        label="Number",
        help_text="The caller's or callee's full number, e.g. +14155550100",
    )
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, agents=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["agent"].choices = [("", "Any agent"), *((str(a.id), a.name) for a in agents)]

    def clean_number(self):
        value = self.cleaned_data.get("number", "").strip()
        if not value:
            return ""
        try:
            return parse_e164(value)
        except InvalidPhoneNumber:
            raise forms.ValidationError(
                "Type the whole number with its country code, e.g. +14155550100 (numbers are stored encrypted, "
                "so only a whole number can be searched)."
            ) from None

    def _clean_date(self, name):
        value = self.cleaned_data.get(name)
        if value is not None and not FIRST_DATE <= value <= LAST_DATE:
            raise forms.ValidationError(f"Choose a date between {FIRST_DATE:%Y-%m-%d} and {LAST_DATE:%Y-%m-%d}.")
        return value

    def clean_date_from(self):
        return self._clean_date("date_from")

    def clean_date_to(self):
        return self._clean_date("date_to")

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned


# An agent turn's moments (telephony.services.conversations.turn_payload's "latency"), as the page names them.
LATENCY_LABELS = (
    ("end_of_turn_ms", "End of turn"),
    ("transcript_ms", "Transcript"),
    ("handed_over_ms", "Handed to the LLM"),
    ("retrieved_ms", "Knowledge"),
    ("llm_first_token_ms", "LLM first token"),
    ("tts_first_byte_ms", "TTS first byte"),
    ("first_audio_ms", "First audio"),
)


def _offset(seconds: float) -> str:
    minutes, rest = divmod(max(0, int(seconds)), 60)
    return f"{minutes:02d}:{rest:02d}"


def conversation_context(call) -> dict:
    """The call's turns as the page shows them: each turn's payload (the shape live updates carry too), when
    it began after the first turn, the knowledge documents it used (each once), its measured latencies, and
    the median first-audio latency of the agent's replies."""
    from telephony.services.conversations import turn_payload

    turns = list(selectors.call_turns(call))
    first = turns[0].started_at if turns else None
    rows, first_audio = [], []
    for turn in turns:
        payload = turn_payload(turn)
        latency = payload["latency"]
        if payload["role"] == "agent" and latency["first_audio_ms"] is not None:
            first_audio.append(latency["first_audio_ms"])
        rows.append({
            "turn": payload,
            "offset": _offset((turn.started_at - first).total_seconds()),
            "sources": list(dict.fromkeys(name for name in payload["sources"] if name)),
            "latencies": [(key, label, latency[key]) for key, label in LATENCY_LABELS if latency.get(key) is not None],
        })  # fmt: skip
    return {
        "turns": rows,
        "median_first_audio_ms": round(median(first_audio)) if first_audio else None,
        "measured_replies": len(first_audio),
    }


def _agents(organization):
    from telephony.models import Agent

    return list(Agent.objects.for_org(organization).only("id", "name").order_by("name"))


class CallListView(OrganizationViewMixin, View):
    """The organization's calls, newest first, 50 a page (keyset: "Older calls" follows a cursor)."""

    permission_required = "product.use"
    template_name = "telephony/calls/list.html"

    def get(self, request, org_slug):
        agents = _agents(self.organization)
        params = {k: v for k, v in request.GET.items() if k != "after"}
        form = CallFilterForm(params or None, agents=agents)
        status, rows, page = 200, [], selectors.CallPage(calls=[], next_cursor=None)
        filters = {}
        if form.is_bound and not form.is_valid():
            status = 400
        else:
            filters = {k: v for k, v in (form.cleaned_data if form.is_bound else {}).items() if v}
            queryset = selectors.call_list(organization=self.organization, filters=filters)
            try:
                page = selectors.call_page(queryset=queryset, after=request.GET.get("after"))
            except ValueError:  # a cursor that is not ours: start from the newest
                page = selectors.call_page(queryset=queryset)
            rows = selectors.call_rows(page.calls)
        query = request.GET.copy()
        query.pop("after", None)
        context = {
            "form": form,
            "rows": rows,
            "page": page,
            "filtered": bool(filters) or status == 400,
            "query_prefix": f"{query.urlencode()}&" if query else "",
            "is_first_page": not request.GET.get("after"),
            "any_calls": bool(rows) or selectors.call_count(organization=self.organization) > 0,
            "live_events_url": f"/ws/o/{self.organization.slug}/events/",
        }
        return render(request, self.template_name, context, status=status)


class CallDetailView(OrganizationViewMixin, View):
    """One call: who, when, how long, its conversation (live while it runs), its timeline, and what it left
    (recording, transcript, summary)."""

    permission_required = "product.use"
    template_name = "telephony/calls/detail.html"

    def get(self, request, org_slug, call_id):
        call = selectors.call_get(organization=self.organization, call_id=call_id)
        from telephony.services.calls import call_payload

        context = {
            "call": call,
            "summary": call_payload(call),
            "events": selectors.call_timeline(call=call),
            "conversation": conversation_context(call),
            "live_events_url": f"/ws/o/{self.organization.slug}/events/",
        }
        return render(request, self.template_name, context)


class LiveCallsPanelView(OrganizationViewMixin, View):
    """The dashboard's "Live calls" panel (loaded into the dashboard; live-calls.js keeps it current)."""

    permission_required = "product.use"
    template_name = "telephony/calls/_live_panel.html"

    def get(self, request, org_slug):
        calls = selectors.live_call_list(organization=self.organization)
        context = {
            "rows": selectors.call_rows(calls),
            "live_events_url": f"/ws/o/{self.organization.slug}/events/",
        }
        return render(request, self.template_name, context)


urlpatterns = [
    path("calls/", CallListView.as_view(), name="call-list"),
    path("calls/live/", LiveCallsPanelView.as_view(), name="call-live-panel"),
    path("calls/<uuid:call_id>/", CallDetailView.as_view(), name="call-detail"),
]
