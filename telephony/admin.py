"""Telephony in the back office (support staff only; see jagcall/kernel/admin.py). One section per area."""

from __future__ import annotations

from django.contrib import admin

from jagcall.kernel.admin import BackOfficeInline, ReadOnlyModelAdmin
from telephony.models import (
    Agent,
    BrowserCallingApp,
    Call,
    CallAnalysis,
    CallEvent,
    CallRecording,
    ConversationTurn,
    PhoneNumber,
    StreamToken,
    Transcript,
    TwilioSubaccount,
)  # fmt: skip

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


@admin.register(BrowserCallingApp)
class BrowserCallingAppAdmin(ReadOnlyModelAdmin):
    """The softphone's TwiML application and signing key at Twilio; never the key's secret."""

    list_display = ("twiml_app_sid", "organization", "account_sid", "api_key_sid", "created_at")
    list_select_related = ("organization",)
    search_fields = ("twiml_app_sid", "api_key_sid", "account_sid", "organization__name", "organization__slug")
    fields = ("id", "organization", "account_sid", "twiml_app_sid", "api_key_sid", "created_at")
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


# --- calls and their timelines ---------------------------------------------------------------------
# Read-only: a call changes only through telephony.services.calls (Twilio's signed callbacks). [!!] The
# numbers of callers and callees are personal data: support sees them masked, never decrypted in full.


class CallEventInline(BackOfficeInline):
    model = CallEvent
    extra = 0
    can_delete = False
    fields = ("occurred_at", "kind", "sequence_number", "source", "details")
    readonly_fields = fields
    ordering = ("occurred_at", "created_at")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Call)
class CallAdmin(ReadOnlyModelAdmin):
    list_display = ("created_at", "organization", "direction", "status", "agent", "counterpart", "duration_seconds")
    list_filter = ("direction", "status")
    list_select_related = ("organization", "agent")
    search_fields = ("twilio_sid", "account_sid", "organization__name", "organization__slug")
    ordering = ("-created_at",)
    fields = (
        "id", "organization", "direction", "status", "agent", "phone_number", "counterpart", "twilio_sid",
        "account_sid", "placed_by", "created_at", "answered_at", "ended_at", "duration_seconds", "billable_seconds",
        "price", "price_unit", "error_code", "error_message",
    )  # fmt: skip
    readonly_fields = fields
    inlines = [CallEventInline]

    @admin.display(description="Other party")
    def counterpart(self, call):
        from telephony.services.calls import masked_number

        return masked_number(call.counterpart_number)


@admin.register(CallEvent)
class CallEventAdmin(ReadOnlyModelAdmin):
    """Every call's timeline in one list, to trace a provider's callbacks across calls."""

    list_display = ("occurred_at", "organization", "call", "kind", "sequence_number", "source")
    list_filter = ("kind", "source")
    list_select_related = ("organization", "call")
    search_fields = ("call__twilio_sid", "organization__name", "organization__slug")
    ordering = ("-occurred_at",)
    raw_id_fields = ("call",)
    fields = ("id", "organization", "call", "kind", "occurred_at", "sequence_number", "source", "details", "created_at")
    readonly_fields = fields


@admin.register(ConversationTurn)
class ConversationTurnAdmin(ReadOnlyModelAdmin):
    """Each turn's role, timing and latencies, to trace a slow or cut-off conversation. [!!] Never what was
    said: the text, what was retrieved and the tool's details are the caller's conversation, encrypted."""

    list_display = ("started_at", "organization", "call", "index", "role", "interrupted", "first_audio_ms")
    list_filter = ("role", "interrupted")
    list_select_related = ("organization", "call")
    search_fields = ("call__twilio_sid", "session", "organization__name", "organization__slug")
    ordering = ("-started_at",)
    raw_id_fields = ("call", "agent")
    fields = (
        "id", "organization", "call", "agent", "session", "index", "role", "interrupted", "end_of_turn_ms",
        "transcript_ms", "retrieved_ms", "llm_first_token_ms", "tts_first_byte_ms", "first_audio_ms", "started_at",
    )  # fmt: skip
    readonly_fields = fields


@admin.register(StreamToken)
class StreamTokenAdmin(ReadOnlyModelAdmin):
    """Media-stream tokens: when each was issued and used. Only a hash is stored, and it is not shown."""

    list_display = ("created_at", "organization", "call", "expires_at", "used_at")
    list_filter = (("used_at", admin.EmptyFieldListFilter),)
    list_select_related = ("organization", "call")
    search_fields = ("call__twilio_sid", "organization__name", "organization__slug")
    ordering = ("-created_at",)
    raw_id_fields = ("call",)
    fields = ("id", "organization", "call", "created_at", "expires_at", "used_at")
    readonly_fields = fields
