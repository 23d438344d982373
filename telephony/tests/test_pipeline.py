"""The post-call pipeline end to end: a real Celery worker, the real SDKs, the providers' stand-ins.

recording callback -> download through the Twilio SDK, stored encrypted, deleted at Twilio
-> Deepgram pre-recorded transcript with speakers -> the agent's LLM summary and schema fields.
The worker is a separate process on this test's database; it reaches the stand-ins through
PROVIDER_BASE_URLS given in its environment, and reads the same keys and files as this process.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.urls import reverse

from accounts.permissions import Role
from accounts.tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from compliance.models import AuditEvent
from jagcall.kernel.standins.twilio.records import Recording, new_sid, now
from jagcall.tests.test_celery import BASE_DIR, _stop, _worker_env
from telephony.models import Call, CallAnalysis, CallDirection, CallRecording, StepStatus, Transcript
from telephony.services.recordings import recording_received
from telephony.services.twilio_accounts import twilio_for
from telephony.tests.factories import AgentFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SCHEMA = [
    {"name": "appointment_requested", "type": "boolean", "description": "Did the caller ask for an appointment?"},
    {"name": "caller_name", "type": "string", "description": "The caller's name"},
    {"name": "sentiment", "type": "enum", "options": ["positive", "neutral", "negative"]},
    {"name": "party_size", "type": "integer", "description": "How many people"},
]


@pytest.fixture
def pipeline_worker(tmp_path, twilio_standin, deepgram_standin, openai_standin, anthropic_standin):
    """A real worker on the default and transcription queues, pointed at this test's stand-ins."""
    stand_ins = {"twilio": twilio_standin, "deepgram": deepgram_standin, "openai": openai_standin, "anthropic": anthropic_standin}
    env = _worker_env(tmp_path / "data")
    env.update(
        PROVIDER_BASE_URLS=",".join(f"{name}={s.base_url}" for name, s in stand_ins.items()),
        TWILIO_ACCOUNT_SID=twilio_standin.account_sid,
        TWILIO_AUTH_TOKEN=twilio_standin.auth_token,
        DEEPGRAM_API_KEY=deepgram_standin.api_key,
        OPENAI_API_KEY=openai_standin.api_key,
        ANTHROPIC_API_KEY=anthropic_standin.api_key,
        SIMULATED_PROVIDERS="false",
        # The same keys and files as this process: the worker encrypts what the test decrypts.
        JAGCALL_MASTER_KEYSET_FILE=str(settings.JAGCALL_MASTER_KEYSET_FILE),
        JAGCALL_BLIND_INDEX_KEYS=settings.JAGCALL_BLIND_INDEX_KEYS,
        SECRET_KEY=settings.SECRET_KEY,
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        POST_CALL_RETRY_BASE_SECONDS="1",
        PROVIDER_MAX_RETRIES="0",
    )
    log_path = tmp_path / "worker.log"
    command = [
        sys.executable, "-m", "celery", "-A", "jagcall", "worker", "-Q", "default,transcription",
        "--pool=solo", "--concurrency=1", "--without-mingle", "--without-gossip", "--loglevel=INFO",
        "-n", f"test-{uuid.uuid4().hex}@%h",
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process, log_path
    finally:
        _stop(process)


def wait_for(condition, worker, timeout: float = 60.0):
    process, log_path = worker
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process.poll() is not None:
            break
        time.sleep(0.2)
    pytest.fail(f"timed out (worker {'running' if process.poll() is None else 'exited'}):\n{Path(log_path).read_text()[-6000:]}")


def step(model, call):
    return model.objects.for_org(call.organization).filter(call=call).first()


def settled(call):
    """The first failed step, or the analysis once done."""
    for model in (CallRecording, Transcript, CallAnalysis):
        row = step(model, call)
        if row is not None and row.status == StepStatus.FAILED:
            return row
    analysis = step(CallAnalysis, call)
    return analysis if analysis is not None and analysis.status == StepStatus.DONE else None


def finished_call(twilio_standin, *, provider="openai", model="gpt-4o-mini"):
    """An organization, an agent with an analysis schema, and a finished call whose recording waits at Twilio."""
    organization = OrganizationFactory()
    agent = AgentFactory(
        organization=organization, analysis_schema=SCHEMA, llm_provider=provider, llm_model=model,
        stt_model="nova-3", stt_language="en-US",
    )  # fmt: skip
    access = twilio_for(organization)  # the organization's subaccount at the stand-in
    call_sid = new_sid("CA")
    recording = Recording(
        sid=new_sid("RE"), account_sid=access.account_sid, call_sid=call_sid, duration=42, channels=1,
        source="OutboundAPI", start_time=now(),
    )  # fmt: skip
    twilio_standin.recordings[recording.sid] = recording
    call = Call.objects.create(
        organization=organization, direction=CallDirection.OUTBOUND, agent=agent, status="completed",
        from_number="+14155550100", to_number="+14155550142", twilio_sid=call_sid, account_sid=access.account_sid,
    )  # fmt: skip
    return call, recording


def receive(call, recording, standin):
    return recording_received(
        call=call, recording_sid=recording.sid, recording_url=standin.base_url + recording.path,
        duration_seconds="42", channels="1",
    )  # fmt: skip


def raw_columns(table: str, columns: str, call) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {table} WHERE call_id = %s", [call.id])  # noqa: S608 (test constants)
        return cursor.fetchone()


def test_a_recording_becomes_an_encrypted_transcript_and_summary(pipeline_worker, twilio_standin, deepgram_standin, openai_standin):
    call, twilio_recording = finished_call(twilio_standin)

    receive(call, twilio_recording, twilio_standin)
    done = wait_for(lambda: settled(call), pipeline_worker)
    assert done.status == StepStatus.DONE, done.failure_reason

    # The audio: downloaded through the SDK with the account's credentials, stored encrypted, gone at Twilio.
    recording = step(CallRecording, call)
    assert recording.status == StepStatus.DONE and recording.attempts == 1
    media = twilio_standin.requests_to(f"{twilio_recording.path}.wav", "GET")
    assert len(media) == 1 and media[0].header("authorization").startswith("Basic ")
    assert twilio_recording.sid not in twilio_standin.recordings
    assert recording.deleted_at_provider is not None
    assert len(twilio_standin.requests_to(f"{twilio_recording.path}.json", "DELETE")) == 1
    raw = recording.audio.storage.backend.open(recording.audio.name).read()
    assert not raw.startswith(b"RIFF") and b"RIFF" not in raw and b"WAVE" not in raw
    with recording.audio.open() as audio:
        plain = audio.read()
    assert plain.startswith(b"RIFF") and len(plain) == recording.size_bytes
    assert recording.content_type.startswith("audio/")

    # The transcript: Deepgram's pre-recorded API with the agent's model and language, speakers and times.
    (listen,) = deepgram_standin.requests_to("/v1/listen", "POST")
    assert listen.body == plain
    for option in ("diarize", "punctuate", "utterances", "smart_format", "mip_opt_out"):
        assert listen.query[option] == "true", option
    assert listen.query["model"] == "nova-3" and listen.query["language"] == "en-US"
    transcript = step(Transcript, call)
    assert {u["speaker"] for u in transcript.utterances} == {0, 1}
    assert all(u["end"] > u["start"] >= 0 for u in transcript.utterances)
    assert "Jordan Lee" in transcript.text

    # The analysis: a strict json_schema, store=false, validated against the agent's schema.
    (completion,) = openai_standin.completions
    assert completion["store"] is False
    assert completion["model"] == "gpt-4o-mini"
    response_format = completion["response_format"]
    assert response_format["type"] == "json_schema" and response_format["json_schema"]["strict"] is True
    schema = response_format["json_schema"]["schema"]
    assert set(schema["required"]) == {"summary", *(f["name"] for f in SCHEMA)}
    assert schema["additionalProperties"] is False
    assert "Speaker 2: Hi, I'd like to book a cleaning appointment" in completion["messages"][1]["content"]
    analysis = step(CallAnalysis, call)
    assert analysis.summary and analysis.provider == "openai"
    fields = analysis.fields
    assert set(fields) == {f["name"] for f in SCHEMA}
    assert all(field["valid"] for field in fields.values()), fields
    assert isinstance(fields["appointment_requested"]["value"], bool)
    assert fields["sentiment"]["value"] in ("positive", "neutral", "negative", None)

    # [!!] C1: neither transcript nor summary is in the database in clear.
    text, utterances = raw_columns("telephony_transcript", "text::text, utterances::text", call)
    summary, stored_fields = raw_columns("telephony_callanalysis", "summary::text, fields::text", call)
    for column in (text, utterances, summary, stored_fields):
        assert "Jordan" not in column and "appointment" not in column
    assert analysis.summary[:20] not in summary

    # The call page's partial shows it all.
    from django.template.loader import render_to_string

    html = render_to_string("telephony/calls/_post_call.html", {"call": call, "current_organization": call.organization})
    assert "Speaker 2" in html and "Jordan Lee" in html and analysis.summary[:30] in html
    assert reverse("telephony:call-recording", kwargs={"org_slug": call.organization.slug, "call_id": call.id}) in html


def test_the_anthropic_path_forces_the_analysis_tool(pipeline_worker, twilio_standin, anthropic_standin, openai_standin):
    call, twilio_recording = finished_call(twilio_standin, provider="anthropic", model="claude-haiku-4-5")

    receive(call, twilio_recording, twilio_standin)
    done = wait_for(lambda: settled(call), pipeline_worker)

    assert done.status == StepStatus.DONE, done.failure_reason
    (message,) = anthropic_standin.messages
    assert message["model"] == "claude-haiku-4-5"
    (tool,) = message["tools"]
    assert message["tool_choice"] == {"type": "tool", "name": tool["name"]}
    assert set(tool["input_schema"]["required"]) == {"summary", *(f["name"] for f in SCHEMA)}
    assert openai_standin.completions == []
    analysis = step(CallAnalysis, call)
    assert analysis.provider == "anthropic" and analysis.summary
    assert all(field["valid"] for field in analysis.fields.values())


def test_provider_500s_are_retried_with_backoff_then_succeed(pipeline_worker, twilio_standin, deepgram_standin):
    call, twilio_recording = finished_call(twilio_standin)
    twilio_standin.fail_next(500, "Internal error", path_prefix=f"{twilio_recording.path}.wav")
    deepgram_standin.fail_next(503, "Service unavailable", path_prefix="/v1/listen")

    receive(call, twilio_recording, twilio_standin)
    done = wait_for(lambda: settled(call), pipeline_worker)

    assert done.status == StepStatus.DONE, done.failure_reason
    assert step(CallRecording, call).attempts == 2
    assert step(Transcript, call).attempts == 2
    assert len(twilio_standin.requests_to(f"{twilio_recording.path}.wav", "GET")) == 2
    assert len(deepgram_standin.requests_to("/v1/listen", "POST")) == 2
    assert twilio_recording.sid not in twilio_standin.recordings


def test_a_permanent_failure_shows_its_reason_and_the_retry_button_works(pipeline_worker, twilio_standin, deepgram_standin, client):
    call, twilio_recording = finished_call(twilio_standin)
    deepgram_standin.fail_next(401, "Invalid credentials.", path_prefix="/v1/listen")

    receive(call, twilio_recording, twilio_standin)
    failed = wait_for(lambda: settled(call), pipeline_worker)

    assert isinstance(failed, Transcript) and failed.status == StepStatus.FAILED
    assert "credentials were refused" in failed.failure_reason and "Deepgram" in failed.failure_reason
    assert failed.attempts == 1  # a 401 is not retried
    assert len(deepgram_standin.requests_to("/v1/listen", "POST")) == 1

    user = UserFactory()
    MembershipFactory(organization=call.organization, user=user, role=Role.MEMBER)
    client.force_login(user)
    from django.template.loader import render_to_string

    html = render_to_string("telephony/calls/_post_call.html", {"call": call, "current_organization": call.organization})
    assert "credentials were refused" in html and "Retry the failed step" in html

    retry_url = reverse("telephony:call-post-call-retry", kwargs={"org_slug": call.organization.slug, "call_id": call.id})
    response = client.post(retry_url)
    assert response.status_code == 302

    done = wait_for(lambda: settled(call), pipeline_worker)
    assert done.status == StepStatus.DONE, done.failure_reason
    assert step(Transcript, call).failure_reason == ""
    event = AuditEvent.objects.unscoped("test: inspects rows directly").get(action="call.post_call_retried")
    assert event.organization_id == call.organization_id and event.metadata["step"] == "transcript"

    # Nothing is left to retry: a second press says so and queues nothing.
    response = client.post(retry_url, follow=True)
    assert "nothing to retry" in response.content.decode()


def test_running_a_done_step_again_changes_nothing(pipeline_worker, twilio_standin, deepgram_standin, openai_standin):
    from telephony.services.analysis import analysis_create
    from telephony.services.recordings import recording_download
    from telephony.services.transcripts import transcript_create

    call, twilio_recording = finished_call(twilio_standin)
    receive(call, twilio_recording, twilio_standin)
    assert wait_for(lambda: settled(call), pipeline_worker).status == StepStatus.DONE
    before = {model: step(model, call) for model in (CallRecording, Transcript, CallAnalysis)}
    requests_before = (len(twilio_standin.requests), len(deepgram_standin.requests), len(openai_standin.requests))

    call = Call.objects.for_org(call.organization).get(pk=call.pk)
    assert recording_download(call=call) is None
    assert transcript_create(call=call) is None
    assert analysis_create(call=call) is None
    # A duplicate callback neither makes a row nor queues anything.
    assert receive(call, twilio_recording, twilio_standin).pk == before[CallRecording].pk
    from telephony.tasks import recording_download_task

    assert recording_download_task.delay(str(call.organization_id), str(call.id)).get(timeout=30) == "skipped"

    for model, row in before.items():
        again = step(model, call)
        assert (again.status, again.attempts, again.updated_at) == (row.status, row.attempts, row.updated_at)
    assert step(CallRecording, call).audio.name == before[CallRecording].audio.name
    assert (len(twilio_standin.requests), len(deepgram_standin.requests), len(openai_standin.requests)) == requests_before


def test_twilios_signed_recording_callback_starts_the_pipeline(pipeline_worker, twilio_standin, client):
    from telephony.tests.calls_support import signed_post

    call, twilio_recording = finished_call(twilio_standin)
    params = {
        "AccountSid": call.account_sid, "CallSid": call.twilio_sid, "RecordingSid": twilio_recording.sid,
        "RecordingUrl": twilio_standin.base_url + twilio_recording.path, "RecordingStatus": "completed",
        "RecordingDuration": "42", "RecordingChannels": "1", "RecordingSource": "OutboundAPI",
    }  # fmt: skip

    response = signed_post(client, "twilio-hooks:recording", params, account_sid=call.account_sid)
    assert response.status_code == 204, response.content
    # Twilio delivers again: the same recording, queued once.
    signed_post(client, "twilio-hooks:recording", params, account_sid=call.account_sid)

    done = wait_for(lambda: settled(call), pipeline_worker)
    assert done.status == StepStatus.DONE, done.failure_reason
    assert step(CallRecording, call).duration_seconds == 42
    assert len(twilio_standin.requests_to(f"{twilio_recording.path}.wav", "GET")) == 1
    assert twilio_recording.sid not in twilio_standin.recordings
