"""After a call: recording -> transcript -> analysis, one step after the other in Celery.

    recording_received (the recording callback)  ->  recording_download_task
        download through the Twilio SDK, store encrypted (streamed), delete at Twilio
    ->  transcript_create_task (services/transcripts.py): Deepgram pre-recorded
    ->  analysis_create_task (services/analysis.py): the agent's LLM, validated against its schema

Each step is a row (CallRecording, Transcript, CallAnalysis) with its state:
pending -> running -> done, or failed with a reason shown on the call page and
a retry button (``post_call_retry``). A step that is done is never run again
(re-running it changes nothing); a step interrupted half-way resumes where it
stopped (a stored recording is not downloaded again, a recording deleted at
Twilio is not deleted again). Retryable provider errors are retried by the
task with exponential backoff (telephony/tasks.py); a permanent one, or the
last retry, marks the step failed.

[!!] No copy stays at Twilio: the recording is deleted there as soon as ours
is stored. Audio, transcript and summary are encrypted with the
organization's keys (C1).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

from django.db import transaction
from django.utils import timezone

from compliance.services.audit import audit_record
from jagcall.kernel.crypto.storage import CHUNK as STORAGE_CHUNK
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.providers.twilio_sids import RECORDING, twilio_sid_valid
from telephony.models import Call, CallRecording, StepStatus
from telephony.services.calls import INT32_MAX
from telephony.services.pipeline import STEPS, call_event, queue_on_commit, queue_step, step_begin, step_done

logger = logging.getLogger("jagcall.telephony")

# Bytes read at a time when skipping to a range's start (the stream cannot seek).
SKIP_CHUNK = 64 * 1024

# --- the recording callback ---------------------------------------------------------------

# A call's recording is mono or, for a dual-channel recording, two channels.
RECORDING_CHANNELS = (1, 2)


def _whole(value, what: str, lowest: int, highest: int) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ApplicationError(f"The recording's {what} is not a whole number.", code="invalid_recording") from None
    if not lowest <= number <= highest:
        raise ApplicationError(
            f"The recording's {what} must be between {lowest} and {highest}.", code="invalid_recording"
        )
    return number


@transaction.atomic
def recording_received(*, call, recording_sid: str, recording_url: str = "", duration_seconds=None, channels=1) -> CallRecording:
    """The row for this recording (made once, whatever the number of callbacks); the download is queued on commit.

    A second, different recording of a call that already has one is not kept:
    it is deleted at Twilio (no copy stays there) and the first one is returned.
    """
    if not twilio_sid_valid(recording_sid, RECORDING):
        raise ApplicationError(f"{recording_sid!r:.60} is not a Twilio recording SID", code="invalid_recording")
    duration_seconds = _whole(duration_seconds, "duration", 0, INT32_MAX)
    channels = _whole(channels or 1, "channel count", *RECORDING_CHANNELS)
    existing = CallRecording.objects.for_org(call.organization).filter(call=call).first()
    if existing is not None:
        if existing.twilio_sid != recording_sid:
            logger.warning("call %s: extra recording %s discarded (the call keeps %s)", call.id, recording_sid, existing.twilio_sid)
            queue_on_commit("telephony.tasks.recording_discard_task", str(call.organization_id), str(call.id), recording_sid)
        return existing
    recording = CallRecording.objects.create(
        organization_id=call.organization_id,
        call=call,
        twilio_sid=recording_sid,
        source_url=(recording_url or "")[:500],
        duration_seconds=duration_seconds,
        channels=channels,
    )
    queue_step("recording", call)
    return recording


# --- step 1: download, store encrypted, delete at Twilio -------------------------------------


class _CountingReader(io.RawIOBase):
    """A read-only file over the download's chunks, counting the bytes (the plaintext size)."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._pending = b""
        self.size = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        count = min(len(buffer), len(self._pending))
        buffer[:count], self._pending = self._pending[:count], self._pending[count:]
        self.size += count
        return count


def _twilio_access(call: Call):
    from telephony.services.twilio_accounts import twilio_for, twilio_for_account

    if call.account_sid:
        return twilio_for_account(call.organization, call.account_sid)
    return twilio_for(call.organization)


def recording_download(*, call: Call) -> CallRecording | None:
    """Step 1. Raises ProviderError/ApplicationError for the task to retry or fail the step."""
    from django.core.files import File

    from telephony.providers.twilio_recordings import recording_delete, recording_media

    recording = step_begin(CallRecording, call)
    if recording is None:
        return None
    access = None
    if not recording.audio:
        access = _twilio_access(call)
        with recording_media(access, recording.twilio_sid) as (content_type, chunks):
            reader = _CountingReader(chunks)
            recording.audio.save(f"{recording.twilio_sid}.wav", File(io.BufferedReader(reader, STORAGE_CHUNK)), save=False)
        if reader.size == 0:
            recording.audio.delete(save=False)
            raise ApplicationError("Twilio sent an empty recording: there is no audio to keep.", code="empty_recording")
        recording.content_type = content_type
        recording.size_bytes = reader.size
        recording.save(update_fields=["audio", "content_type", "size_bytes", "updated_at"])
    if recording.deleted_at_provider is None:
        recording_delete(access or _twilio_access(call), recording.twilio_sid)
        recording.deleted_at_provider = timezone.now()
        recording.save(update_fields=["deleted_at_provider", "updated_at"])
    step_done(
        recording, call, update_fields=[], next_step="transcript", event="recording.stored",
        size_bytes=recording.size_bytes, deleted_at_provider=True,
    )  # fmt: skip
    return recording


def recording_discard(*, call: Call, recording_sid: str) -> None:
    """Delete at Twilio a recording the call does not keep (a second one)."""
    from telephony.providers.twilio_recordings import recording_delete

    recording_delete(_twilio_access(call), recording_sid)


# --- reading the stored audio (playback, transcription) ---------------------------------------


def recording_open(recording: CallRecording):
    """The decrypted audio as a read-only stream (forward only); close it after use."""
    if not recording.audio:
        raise ApplicationError("This call's recording is not stored yet.", code="no_recording", status=404)
    return recording.audio.storage.open_for(organization_id=recording.organization_id, name=recording.audio.name)


def recording_chunks(*, recording: CallRecording, start: int = 0, end: int | None = None, chunk_size: int = SKIP_CHUNK):
    """Plaintext bytes ``start``..``end`` (inclusive) of the recording, decrypted as they are read.

    The decrypting stream cannot seek, so the bytes before ``start`` are read and
    dropped ``SKIP_CHUNK`` at a time (memory stays bounded; the cost is decrypting
    them, measured in telephony/tests/test_recording_playback.py).
    """
    stream = recording_open(recording)
    try:
        remaining_skip = start
        while remaining_skip > 0:
            data = stream.read(min(SKIP_CHUNK, remaining_skip))
            if not data:
                return
            remaining_skip -= len(data)
        remaining = None if end is None else end - start + 1
        while remaining is None or remaining > 0:
            data = stream.read(chunk_size if remaining is None else min(chunk_size, remaining))
            if not data:
                return
            if remaining is not None:
                remaining -= len(data)
            yield data
    finally:
        stream.close()


# --- retry after a permanent failure ---------------------------------------------------------


@transaction.atomic
def post_call_retry(*, call: Call, actor) -> str:
    """Queue the failed step of ``call`` again (the first failed one); returns its name."""
    for name, model in STEPS.items():
        step = model.objects.for_org(call.organization).select_for_update().filter(call=call).first()
        if step is not None and step.status == StepStatus.FAILED:
            break
    else:
        raise ApplicationError("No step of this call's processing has failed: there is nothing to retry.", code="nothing_to_retry", status=409)
    reason = step.failure_reason
    step.status = StepStatus.PENDING
    step.failure_reason = ""
    step.attempts = 0
    step.save(update_fields=["status", "failure_reason", "attempts", "updated_at"])
    audit_record(
        action="call.post_call_retried",
        organization=call.organization,
        actor=actor,
        resource=call,
        metadata={"step": name, "failure_reason": reason[:300]},
    )
    call_event(call, f"{name}.retried")
    queue_step(name, call)
    return name


