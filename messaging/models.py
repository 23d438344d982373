"""Messaging's records: contacts, SMS conversations and their messages, per-number subscriptions.

Personal data is encrypted with the organization's keys (C16): a contact's
phone number (found by a blind index), custom fields and notes; every
message body and media URL; the recipient of a subscription. The blind
index of a number uses telephony's purpose (``telephony.number``), so a
contact's calls are found by the same index as its messages.

A conversation is the pair (one of the organization's numbers, a contact's
number). A subscription is the same pair seen from consent: whether that
person may be texted from that number. No row means subscribed: only opt-outs
and opt-ins leave one, and each change leaves a ``SubscriptionChange`` (the
per-number history).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.tenancy import OrganizationOwned
from jagcall.kernel.crypto.blind_index import BlindIndexField
from jagcall.kernel.crypto.fields import EncryptedJSONField, EncryptedTextField
from jagcall.kernel.phone import normalize_for_index

NUMBER_PURPOSE = "telephony.number"


# --- contacts ---------------------------------------------------------------------------------


class Contact(OrganizationOwned):
    """A person the organization talks with, by phone number (one contact per number)."""

    # Lists go through the (organization, name) index. No index of its own: on statistics that lag
    # behind a fast-growing table it tempted the planner to read every contact of the organization to
    # find one number.
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    phone = EncryptedTextField(help_text="E.164, e.g. +14155550100")
    # Found through the unique (phone_index, organization) index, which it leads: no index of its own.
    # Its values are keyed per organization, so a number's lookup can go by it alone (see
    # messaging.services.inbound) and no other index can serve that lookup.
    phone_index = BlindIndexField(
        source="phone", purpose=NUMBER_PURPOSE, normalize=normalize_for_index, db_index=False
    )
    name = models.CharField(max_length=120, blank=True)
    time_zone = models.CharField(max_length=64, blank=True, help_text="IANA name, e.g. America/New_York")
    custom_fields = EncryptedJSONField(default=dict, blank=True)
    notes = EncryptedTextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "created_at"]
        constraints = [
            models.UniqueConstraint(fields=["phone_index", "organization"], name="messaging_contact_once_per_number"),
        ]
        indexes = [models.Index(fields=["organization", "name"], name="messaging_contact_org_name")]

    def __str__(self) -> str:
        return self.name or "Contact"

    @property
    def display_name(self) -> str:
        return self.name or self.phone


class ImportStatus(models.TextChoices):
    PREVIEW = "preview", "Waiting for confirmation"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Importing"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ContactImport(OrganizationOwned):
    """A CSV of contacts: previewed, then imported row by row (in Celery), with each row's error kept."""

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    file_name = models.CharField(max_length=255)
    content = EncryptedTextField()  # the CSV as uploaded (it holds numbers); cleared once imported
    status = models.CharField(max_length=10, choices=ImportStatus.choices, default=ImportStatus.PREVIEW)
    total_rows = models.PositiveIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    # [{"row": 7, "errors": [{"field", "message"}], "values": [[header, cell], ...]}]: rows numbered as a spreadsheet
    # shows them (header = 1), with their cells, so the failing rows can be downloaded after the file is cleared.
    row_errors = EncryptedJSONField(default=list, blank=True)
    failure = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.file_name

    @property
    def percent(self) -> int:
        return 100 if not self.total_rows else min(100, self.processed_rows * 100 // self.total_rows)


# --- settings ---------------------------------------------------------------------------------


class MessagingProfile(OrganizationOwned):
    """An organization's messaging settings: what HELP answers, what an opt-out confirms."""

    help_text = models.CharField(max_length=320, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization"], name="messaging_profile_once")]


class A2PStatus(models.TextChoices):
    UNKNOWN = "unknown", "Not checked yet"
    NOT_REQUIRED = "not_required", "Not required (not a US long code)"
    UNREGISTERED = "unregistered", "Not registered"
    PENDING = "pending", "Registration pending"
    VERIFIED = "verified", "Registered"
    FAILED = "failed", "Registration failed"


class NumberMessaging(OrganizationOwned):
    """Messaging settings of one of the organization's numbers: agent replies, A2P 10DLC registration."""

    phone_number = models.OneToOneField("telephony.PhoneNumber", on_delete=models.CASCADE, related_name="messaging")
    agent_replies = models.BooleanField(default=False, help_text="The number's agent answers texts.")
    a2p_status = models.CharField(max_length=15, choices=A2PStatus.choices, default=A2PStatus.UNKNOWN)
    a2p_campaign_sid = models.CharField(max_length=34, blank=True)
    a2p_checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "number messaging settings"
        verbose_name_plural = "number messaging settings"


# --- conversations and messages ------------------------------------------------------------


class Conversation(OrganizationOwned):
    """The texts between one of the organization's numbers and one contact."""

    # Found through the unique (phone_number, contact) index, which it leads: an index of its own would
    # tempt the planner, on statistics that lag behind, to read every conversation of the number.
    phone_number = models.ForeignKey(
        "telephony.PhoneNumber", on_delete=models.PROTECT, related_name="conversations", db_index=False
    )
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="conversations")
    last_message_at = models.DateTimeField(default=timezone.now)
    unread_count = models.PositiveIntegerField(default=0)
    # A member took the thread over: the agent does not answer it until released.
    taken_over_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    taken_over_at = models.DateTimeField(null=True, blank=True)
    # Automatic replies since the last message a person sent (member) — the loop guard's count.
    consecutive_auto_replies = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-last_message_at"]
        constraints = [
            models.UniqueConstraint(fields=["phone_number", "contact"], name="messaging_conversation_once_per_pair"),
        ]
        indexes = [models.Index(fields=["organization", "-last_message_at"], name="messaging_conv_org_recent")]

    def __str__(self) -> str:
        return f"Conversation {self.id}"

    @property
    def agent_paused(self) -> bool:
        return self.taken_over_at is not None


class Direction(models.TextChoices):
    INBOUND = "inbound", "Received"
    OUTBOUND = "outbound", "Sent"


class MessageStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    QUEUED = "queued", "Queued"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    UNDELIVERED = "undelivered", "Undelivered"
    FAILED = "failed", "Failed"


# A status never goes back: a late "sent" after "delivered" changes nothing (Twilio's callbacks can cross).
STATUS_RANK = {
    MessageStatus.QUEUED: 1,
    MessageStatus.SENT: 2,
    MessageStatus.DELIVERED: 3,
    MessageStatus.UNDELIVERED: 3,
    MessageStatus.FAILED: 3,
    MessageStatus.RECEIVED: 3,
}


class SenderType(models.TextChoices):
    CONTACT = "contact", "The contact"
    MEMBER = "member", "A member"
    API_KEY = "api_key", "An API client"
    AGENT = "agent", "The agent"
    SYSTEM = "system", "JagCall (automatic reply)"


class Message(OrganizationOwned):
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    direction = models.CharField(max_length=8, choices=Direction.choices)
    body = EncryptedTextField(blank=True, default="")
    media_urls = EncryptedJSONField(default=list, blank=True)
    twilio_sid = models.CharField(max_length=34, null=True, blank=True, unique=True)
    status = models.CharField(max_length=12, choices=MessageStatus.choices)
    error_code = models.PositiveIntegerField(null=True, blank=True)
    segments = models.PositiveSmallIntegerField(default=1)
    encoding = models.CharField(max_length=6, default="GSM-7")
    marketing = models.BooleanField(default=False)
    # Who sent it: the actor's kind and its audit label as it was then (an email, jc_live_<prefix>, an agent's name).
    sender_type = models.CharField(max_length=10, choices=SenderType.choices)
    sender_label = models.CharField(max_length=254, blank=True)
    sent_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["conversation", "created_at"], name="messaging_msg_conv_time")]

    def __str__(self) -> str:
        return f"{self.get_direction_display()} message {self.twilio_sid or self.id}"

    @property
    def error_meaning(self) -> str:
        from messaging.errors import twilio_error_meaning

        return twilio_error_meaning(self.error_code)


class MessageStatusEvent(OrganizationOwned):
    """One step of a message's status timeline, as Twilio reported it."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="status_events")
    status = models.CharField(max_length=12, choices=MessageStatus.choices)
    error_code = models.PositiveIntegerField(null=True, blank=True)
    occurred_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["occurred_at", "id"]


# --- subscriptions (opt-out per pair of numbers) -----------------------------------------------


class Subscription(OrganizationOwned):
    """Whether ``recipient`` may be texted from ``phone_number``. No row: subscribed."""

    phone_number = models.ForeignKey("telephony.PhoneNumber", on_delete=models.CASCADE, related_name="subscriptions")
    recipient = EncryptedTextField()
    # Found through the unique (phone_number, recipient_index) index: no index of its own (the gate's read).
    recipient_index = BlindIndexField(
        source="recipient", purpose=NUMBER_PURPOSE, normalize=normalize_for_index, db_index=False
    )
    subscribed = models.BooleanField(default=True)
    # A free-text revocation ("please stop texting me") unsubscribed it: a member should read it.
    needs_review = models.BooleanField(default=False)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["phone_number", "recipient_index"], name="messaging_subscription_once"),
        ]

    def __str__(self) -> str:
        return "subscribed" if self.subscribed else "unsubscribed"


class ChangeVia(models.TextChoices):
    KEYWORD = "keyword", "Texted a keyword"
    FREE_TEXT = "free_text", "Asked in their own words"
    TWILIO_OPT_OUT = "twilio_opt_out", "Twilio Advanced Opt-Out"
    CARRIER_REFUSAL = "carrier_refusal", "Twilio refused a send (21610, unsubscribed recipient)"
    MEMBER_UNDO = "member_undo", "A member undid a mistaken opt-out"


class SubscriptionChange(OrganizationOwned):
    """One change of a subscription: the per-number history (also in the audit log)."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="changes")
    subscribed = models.BooleanField()
    via = models.CharField(max_length=16, choices=ChangeVia.choices)
    keyword = models.CharField(max_length=16, blank=True)
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    flagged_for_review = models.BooleanField(default=False)
    actor_label = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
