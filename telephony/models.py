"""Telephony's records: agents, phone numbers, calls and what each call leaves behind.

Personal data is encrypted with the organization's keys: the numbers of
callers and callees (with blind indexes to find them), prompt variables,
recordings, transcripts and summaries. The organization's own phone numbers
are its business lines, not personal data, and stay queryable.
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from accounts.tenancy import OrganizationOwned
from jagcall.kernel.crypto.blind_index import BlindIndexField
from jagcall.kernel.crypto.fields import EncryptedJSONField, EncryptedTextField
from jagcall.kernel.crypto.storage import EncryptedFileField
from jagcall.kernel.phone import normalize_for_index

DEFAULT_AI_DISCLOSURE = "Hello, you are speaking with an automated AI assistant."
DEFAULT_RECORDING_DISCLOSURE = "This call is recorded and transcribed."


# --- agents -----------------------------------------------------------------


class LLMProvider(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"


class VoicemailAction(models.TextChoices):
    HANG_UP = "hang_up", "Hang up"
    LEAVE_MESSAGE = "leave_message", "Leave a message"


class Agent(OrganizationOwned):
    """An AI phone agent: how it speaks, thinks and listens, and what it may do.

    ``tools``: a list of ``{"type": "transfer" | "end_call" | "send_sms" |
    "book_appointment", ...}`` (a transfer names its ``number`` or
    ``user_id``); stored here, carried out by the conversation engine.
    ``analysis_schema``: the named, typed fields the post-call analysis fills
    besides the summary: ``[{"name": "appointment_requested", "type":
    "boolean", "description": "..."}]``.
    """

    name = models.CharField(max_length=120)
    system_prompt = models.TextField()
    first_message = models.TextField(blank=True)
    llm_provider = models.CharField(max_length=20, choices=LLMProvider.choices, default=LLMProvider.OPENAI)
    llm_model = models.CharField(max_length=100, default="gpt-4o-mini")
    temperature = models.FloatField(default=0.7, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)])
    voice_id = models.CharField(max_length=64, blank=True)
    voice_name = models.CharField(max_length=120, blank=True)
    stt_language = models.CharField(max_length=20, default="en-US")
    stt_model = models.CharField(max_length=40, default="nova-3")
    tools = models.JSONField(default=list, blank=True)
    ai_disclosure_enabled = models.BooleanField(default=True)
    ai_disclosure = models.TextField(default=DEFAULT_AI_DISCLOSURE, blank=True)
    recording_disclosure_enabled = models.BooleanField(default=True)
    recording_disclosure = models.TextField(default=DEFAULT_RECORDING_DISCLOSURE, blank=True)
    record_calls = models.BooleanField(default=True)
    max_call_seconds = models.PositiveIntegerField(
        default=600, validators=[MinValueValidator(30), MaxValueValidator(4 * 3600)]
    )
    voicemail_action = models.CharField(max_length=20, choices=VoicemailAction.choices, default=VoicemailAction.HANG_UP)
    voicemail_message = models.TextField(blank=True)
    analysis_schema = models.JSONField(default=list, blank=True)
    # What the agent answers from (the organization's own knowledge bases; services.agents checks that).
    knowledge_bases = models.ManyToManyField("knowledge.KnowledgeBase", blank=True, related_name="agents")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="telephony_agent_name_unique"),
        ]

    def __str__(self) -> str:
        return self.name


# --- the organization's place at Twilio ------------------------------------


class TwilioSubaccount(OrganizationOwned):
    """In platform mode, each organization's own Twilio subaccount (made on first use).

    Numbers, calls and recordings of one organization are then separated at
    Twilio too. An organization that brings its own Twilio account
    (integrations.ProviderCredential) has none.
    """

    account_sid = models.CharField(max_length=34, unique=True)
    auth_token = EncryptedTextField()
    friendly_name = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization"], name="telephony_one_subaccount_per_organization"),
        ]

    def __str__(self) -> str:
        return self.account_sid


class BrowserCallingApp(OrganizationOwned):
    """What the portal's softphone needs at Twilio, made on first use in the organization's Twilio account.

    A TwiML application whose voice URL is our ``browser-voice`` hook (calls
    placed from the browser reach it) and an API key of the same account that
    signs the members' access tokens. An organization has one per Twilio
    account: a change of account (it brings its own) makes a new pair.
    """

    account_sid = models.CharField(max_length=34)
    api_key_sid = models.CharField(max_length=34)
    api_key_secret = EncryptedTextField()
    twiml_app_sid = models.CharField(max_length=34)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization"], name="telephony_one_browser_app_per_organization"),
        ]

    def __str__(self) -> str:
        return self.twiml_app_sid


# --- phone numbers ----------------------------------------------------------


class NumberSource(models.TextChoices):
    PURCHASED = "purchased", "Bought through JagCall"
    IMPORTED = "imported", "Imported from your Twilio account"


class PhoneNumber(OrganizationOwned):
    """One of the organization's lines at Twilio, optionally answered by an agent."""

    number = models.CharField(max_length=20, help_text="E.164, e.g. +14155550100")
    twilio_sid = models.CharField(max_length=34)
    account_sid = models.CharField(max_length=34)
    source = models.CharField(max_length=20, choices=NumberSource.choices, default=NumberSource.PURCHASED)
    friendly_name = models.CharField(max_length=64, blank=True)
    country = models.CharField(max_length=2, blank=True)
    voice_enabled = models.BooleanField(default=True)
    sms_enabled = models.BooleanField(default=False)
    agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="phone_numbers")
    created_at = models.DateTimeField(default=timezone.now)
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["number"]
        constraints = [
            # A line belongs to one organization while it is held; after release it may be bought again.
            models.UniqueConstraint(
                fields=["number"], condition=models.Q(released_at__isnull=True), name="telephony_number_held_once"
            ),
            models.UniqueConstraint(
                fields=["twilio_sid"], condition=models.Q(released_at__isnull=True), name="telephony_number_sid_held_once"
            ),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def is_active(self) -> bool:
        return self.released_at is None


# --- calls ------------------------------------------------------------------


class CallDirection(models.TextChoices):
    INBOUND = "inbound", "Inbound"
    OUTBOUND = "outbound", "Outbound"


class CallStatus(models.TextChoices):
    """Twilio's call statuses, in the order a call normally moves through them."""

    QUEUED = "queued", "Queued"
    INITIATED = "initiated", "Dialing"
    RINGING = "ringing", "Ringing"
    IN_PROGRESS = "in-progress", "In progress"
    COMPLETED = "completed", "Completed"
    BUSY = "busy", "Busy"
    NO_ANSWER = "no-answer", "No answer"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


TERMINAL_STATUSES = frozenset(
    {CallStatus.COMPLETED, CallStatus.BUSY, CallStatus.NO_ANSWER, CallStatus.FAILED, CallStatus.CANCELED}
)
# A callback arriving late never moves a call backwards: a status only replaces one of lower rank.
STATUS_RANK = {
    CallStatus.QUEUED: 0,
    CallStatus.INITIATED: 1,
    CallStatus.RINGING: 2,
    CallStatus.IN_PROGRESS: 3,
    **{status: 4 for status in TERMINAL_STATUSES},
}


class Call(OrganizationOwned):
    direction = models.CharField(max_length=10, choices=CallDirection.choices)
    agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="calls")
    phone_number = models.ForeignKey(
        PhoneNumber, null=True, blank=True, on_delete=models.SET_NULL, related_name="calls"
    )
    # The other party's number and ours as dialled; personal data, found by blind index.
    from_number = EncryptedTextField()
    from_number_index = BlindIndexField(source="from_number", purpose="telephony.number", normalize=normalize_for_index)
    to_number = EncryptedTextField()
    to_number_index = BlindIndexField(source="to_number", purpose="telephony.number", normalize=normalize_for_index)
    status = models.CharField(max_length=20, choices=CallStatus.choices, default=CallStatus.QUEUED)
    twilio_sid = models.CharField(max_length=34, null=True, blank=True, unique=True)
    account_sid = models.CharField(max_length=34, blank=True)
    # Values for the agent's prompt ({first_name} ...), given when the call is placed.
    variables = EncryptedJSONField(null=True, blank=True)
    # Who placed an outbound call (the actor's audit label), empty for inbound calls.
    placed_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    answered_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.PositiveIntegerField(null=True, blank=True)
    billable_seconds = models.PositiveIntegerField(null=True, blank=True)
    price = models.DecimalField(max_digits=10, decimal_places=5, null=True, blank=True)
    price_unit = models.CharField(max_length=3, blank=True)
    error_code = models.CharField(max_length=10, blank=True)
    error_message = models.CharField(max_length=300, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-created_at", "-id"], name="telephony_call_org_recent"),
            models.Index(fields=["organization", "status", "-created_at"], name="telephony_call_org_status"),
            models.Index(fields=["organization", "agent", "-created_at"], name="telephony_call_org_agent"),
        ]

    def __str__(self) -> str:
        return f"{self.get_direction_display()} call {self.twilio_sid or self.id}"

    @property
    def is_finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def counterpart_number(self) -> str:
        """The other party: the caller of an inbound call, the callee of an outbound one."""
        return self.from_number if self.direction == CallDirection.INBOUND else self.to_number


class CallEvent(OrganizationOwned):
    """One step of a call's timeline (a status callback, the media stream, the pipeline)."""

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=40)  # a CallStatus value, or "stream.started", "recording.stored" ...
    occurred_at = models.DateTimeField(default=timezone.now)
    sequence_number = models.IntegerField(null=True, blank=True)
    source = models.CharField(max_length=30, default="twilio")
    details = models.JSONField(default=dict, blank=True)  # never personal data
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["occurred_at", "created_at"]
        indexes = [models.Index(fields=["call", "occurred_at"], name="telephony_event_call_time")]

    def __str__(self) -> str:
        return f"{self.kind} at {self.occurred_at:%H:%M:%S}"


class StreamToken(OrganizationOwned):
    """A single-use, short-lived token that opens one call's media stream.

    Twilio sends no cookie or Origin on the stream's websocket: the token in
    the TwiML we answered with is what proves the stream is that call's. Only
    its hash is stored.
    """

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="stream_tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)


# --- during the call: the live conversation -----------------------------------


class TurnRole(models.TextChoices):
    CALLER = "caller", "Caller"
    AGENT = "agent", "Agent"
    DISCLOSURE = "disclosure", "Disclosure"
    KEYPAD = "keypad", "Keypad"
    TOOL = "tool", "Tool"


class ConversationTurn(OrganizationOwned):
    """One turn of a live conversation (a call, or a test of the agent), as the engine saw it.

    ``text`` is what was said: the caller's final transcript, or what the caller actually
    heard of the agent (an interrupted reply is cut where the playback stopped; ``generated``
    keeps the whole reply the LLM wrote). Conversation text, retrieved passages and tool
    arguments are encrypted; the latencies (milliseconds) are not personal data.
    """

    call = models.ForeignKey(Call, null=True, blank=True, on_delete=models.CASCADE, related_name="turns")
    # A test conversation from the agent's page has no call; it belongs to the agent.
    agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="turns")
    session = models.CharField(max_length=40, blank=True)  # a test conversation's id
    index = models.PositiveIntegerField()
    role = models.CharField(max_length=12, choices=TurnRole.choices)
    text = EncryptedTextField(null=True, blank=True)
    generated = EncryptedTextField(null=True, blank=True)
    interrupted = models.BooleanField(default=False)
    # [{"document": name, "pages": "3-4", "score": 0.03, "chunk": id, "text": "..."}]
    retrieved = EncryptedJSONField(null=True, blank=True)
    # {"name": "transfer_call", "arguments": {...}, "ok": true, "result": "..."}
    tool = EncryptedJSONField(null=True, blank=True)
    # An agent turn's moments, in milliseconds after the caller stopped speaking: the end of the caller's
    # turn decided (the VAD's silence, then Smart Turn's verdict), the final transcript, the turn handed to
    # the LLM (once the speech-to-text service confirmed its final text), the passages retrieved, the LLM's
    # first token, the TTS's first audio byte and the first audio frame sent to the phone line.
    end_of_turn_ms = models.PositiveIntegerField(null=True, blank=True)
    transcript_ms = models.PositiveIntegerField(null=True, blank=True)
    handed_over_ms = models.PositiveIntegerField(null=True, blank=True)
    retrieved_ms = models.PositiveIntegerField(null=True, blank=True)
    llm_first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    tts_first_byte_ms = models.PositiveIntegerField(null=True, blank=True)
    first_audio_ms = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["index"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(call__isnull=False) | ~models.Q(session=""), name="telephony_turn_call_or_session"
            ),
        ]
        indexes = [
            models.Index(fields=["call", "index"], name="telephony_turn_call_index"),
            models.Index(fields=["organization", "session", "index"], name="telephony_turn_session_index"),
        ]

    def __str__(self) -> str:
        return f"{self.get_role_display()} turn {self.index}"


# --- after the call: recording -> transcript -> analysis -----------------------


class StepStatus(models.TextChoices):
    PENDING = "pending", "Waiting"
    RUNNING = "running", "In progress"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class PipelineStep(OrganizationOwned):
    """What every post-call step shares: its state, attempts and the reason it failed."""

    status = models.CharField(max_length=10, choices=StepStatus.choices, default=StepStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    failure_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class CallRecording(PipelineStep):
    call = models.OneToOneField(Call, on_delete=models.CASCADE, related_name="recording")
    twilio_sid = models.CharField(max_length=34, unique=True)
    source_url = models.URLField(max_length=500, blank=True)
    duration_seconds = models.PositiveIntegerField(null=True, blank=True)
    channels = models.PositiveSmallIntegerField(default=1)
    audio = EncryptedFileField(blank=True)
    content_type = models.CharField(max_length=50, blank=True)
    size_bytes = models.PositiveIntegerField(null=True, blank=True)
    # When Twilio's copy was deleted: no copy stays there once ours is stored.
    deleted_at_provider = models.DateTimeField(null=True, blank=True)


class Transcript(PipelineStep):
    call = models.OneToOneField(Call, on_delete=models.CASCADE, related_name="transcript")
    # [{"speaker": 0, "start": 0.0, "end": 1.2, "text": "..."}]
    utterances = EncryptedJSONField(null=True, blank=True)
    text = EncryptedTextField(null=True, blank=True)
    language = models.CharField(max_length=20, blank=True)
    model = models.CharField(max_length=40, blank=True)


class CallAnalysis(PipelineStep):
    call = models.OneToOneField(Call, on_delete=models.CASCADE, related_name="analysis")
    summary = EncryptedTextField(null=True, blank=True)
    fields = EncryptedJSONField(null=True, blank=True)  # the agent's analysis schema, filled and validated
    provider = models.CharField(max_length=20, blank=True)
    model = models.CharField(max_length=100, blank=True)

    class Meta:
        verbose_name_plural = "call analyses"
