"""Step 2 after a call: the stored recording, transcribed by Deepgram (pre-recorded), stored encrypted.

See services/recordings.py for the pipeline as a whole. The audio goes to
Deepgram straight from the decrypting reader; the agent's speech-to-text
model and language are used; utterances keep their speaker and times.
"""

from __future__ import annotations

from jagcall.kernel.errors import ApplicationError
from telephony.models import Call, StepStatus, Transcript
from telephony.services.pipeline import step_begin, step_done
from telephony.services.recordings import recording_open

READ_CHUNK = 256 * 1024


def transcript_create(*, call: Call) -> Transcript | None:
    """Transcribe ``call``'s stored recording. Raises ProviderError/ApplicationError for the task."""
    from telephony.providers.speech import transcribe_recording

    transcript = step_begin(Transcript, call)
    if transcript is None:
        return None
    recording = getattr(call, "recording", None)
    if recording is None or recording.status != StepStatus.DONE or not recording.audio:
        raise ApplicationError("The recording is not stored yet: retry once the recording step is done.", code="no_recording")
    agent = call.agent
    stream = recording_open(recording)
    try:
        result = transcribe_recording(
            organization=call.organization,
            audio=iter(lambda: stream.read(READ_CHUNK), b""),
            model=agent.stt_model if agent else "nova-3",
            language=agent.stt_language if agent else "en-US",
        )
    finally:
        stream.close()
    transcript.utterances = result.utterances
    transcript.text = result.text
    transcript.language = result.language
    transcript.model = result.model
    step_done(
        transcript, call, update_fields=["utterances", "text", "language", "model"], next_step="analysis",
        event="transcript.stored", utterances=len(result.utterances),
    )  # fmt: skip
    return transcript


def transcript_lines(utterances: list[dict] | None) -> list[dict]:
    """Utterances for display: speaker label and times as mm:ss."""
    lines = []
    for item in utterances or []:
        start = float(item.get("start") or 0)
        lines.append(
            {
                "speaker": f"Speaker {int(item.get('speaker') or 0) + 1}",
                "speaker_index": int(item.get("speaker") or 0),
                "start": f"{int(start // 60):02d}:{int(start % 60):02d}",
                "start_seconds": start,
                "text": item.get("text", ""),
            }
        )
    return lines
