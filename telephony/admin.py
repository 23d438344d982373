"""Telephony in the back office (support staff only; see jagcall/kernel/admin.py). One section per area."""

from __future__ import annotations

from django.contrib import admin

from jagcall.kernel.admin import ReadOnlyModelAdmin
from telephony.models import Agent, CallAnalysis, CallRecording, PhoneNumber, Transcript, TwilioSubaccount

# --- agents ---------------------------------------------------------------------------------------
# Read-only: an agent changes only through telephony.services.agents (its rules, and the audit of each
# change with its diff), i.e. in the portal or over the API, by the organization's managers.


@admin.register(Agent)
class AgentAdmin(ReadOnlyModelAdmin):
    list_display = ("name", "organization", "llm_provider", "llm_model", "voice_name", "updated_at")
    list_filter = ("llm_provider",)
    list_select_related = ("organization",)
    search_fields = ("name", "organization__name", "organization__slug")
    ordering = ("organization__name", "name")
    fields = (
        "id", "organization", "name", "system_prompt", "first_message", "llm_provider", "llm_model", "temperature",
        "voice_id", "voice_name", "stt_language", "stt_model", "tools", "ai_disclosure_enabled", "ai_disclosure",
        "recording_disclosure_enabled", "recording_disclosure", "record_calls", "max_call_seconds", "voicemail_action",
        "voicemail_message", "analysis_schema", "created_at", "updated_at",
    )  # fmt: skip
    readonly_fields = fields


# --- the organization's place at Twilio, and its numbers -------------------------------------------
# Read-only: numbers are bought, assigned, released and imported through telephony.services.numbers
# (Twilio first, then the row, audited); a subaccount is made by twilio_accounts. Never its token.


@admin.register(TwilioSubaccount)
class TwilioSubaccountAdmin(ReadOnlyModelAdmin):
    list_display = ("account_sid", "organization", "friendly_name", "created_at")
    list_select_related = ("organization",)
    search_fields = ("account_sid", "organization__name", "organization__slug")
    fields = ("id", "organization", "account_sid", "friendly_name", "created_at")
    readonly_fields = fields


@admin.register(PhoneNumber)
class PhoneNumberAdmin(ReadOnlyModelAdmin):
    list_display = ("number", "organization", "agent", "source", "account_sid", "created_at", "released_at")
    list_filter = ("source", ("released_at", admin.EmptyFieldListFilter))
    list_select_related = ("organization", "agent")
    search_fields = ("number", "twilio_sid", "account_sid", "organization__name", "organization__slug")
    ordering = ("organization__name", "number")
    fields = (
        "id", "organization", "number", "friendly_name", "country", "twilio_sid", "account_sid", "source",
        "voice_enabled", "sms_enabled", "agent", "created_at", "released_at",
    )  # fmt: skip
    readonly_fields = fields


# --- after the call: recording -> transcript -> analysis ------------------------------------------
# Read-only: the steps change only through telephony.services (the pipeline and its audited retry).
# Support sees each step's state and failure reason; never the audio, the transcript or the summary.

_STEP_FIELDS = ("id", "organization", "call", "status", "attempts", "failure_reason", "created_at", "updated_at", "completed_at")


class _PipelineStepAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "organization", "call", "status", "attempts", "updated_at")
    list_filter = ("status",)
    list_select_related = ("organization", "call")
    ordering = ("-created_at",)
    raw_id_fields = ("call",)


@admin.register(CallRecording)
class CallRecordingAdmin(_PipelineStepAdmin):
    fields = (*_STEP_FIELDS, "twilio_sid", "duration_seconds", "channels", "content_type", "size_bytes", "deleted_at_provider")
    readonly_fields = fields
    search_fields = ("twilio_sid",)


@admin.register(Transcript)
class TranscriptAdmin(_PipelineStepAdmin):
    fields = (*_STEP_FIELDS, "language", "model")
    readonly_fields = fields


@admin.register(CallAnalysis)
class CallAnalysisAdmin(_PipelineStepAdmin):
    fields = (*_STEP_FIELDS, "provider", "model")
    readonly_fields = fields
