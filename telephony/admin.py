"""Telephony in the back office (support staff only; see jagcall/kernel/admin.py). One section per area."""

from __future__ import annotations

from django.contrib import admin

from jagcall.kernel.admin import ReadOnlyModelAdmin
from telephony.models import CallAnalysis, CallRecording, Transcript

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
