"""Messaging in the back office (support staff only; see jagcall/kernel/admin.py). One section per area.

Read-only throughout: texts are sent and subscriptions change only through messaging's services (the
gate, Twilio, the audit log). Support sees what happened to a text (its status timeline, Twilio's
error and its meaning, who sent it) and a number's opt-out history, never a message body, a note or a
contact's number in full (masked, as on the call records).
"""

from __future__ import annotations

from django.contrib import admin

from jagcall.kernel.admin import BackOfficeInline, ReadOnlyModelAdmin
from messaging.models import (
    Contact, ContactImport, Conversation, Message, MessageStatusEvent, MessagingProfile, NumberMessaging, Subscription,
    SubscriptionChange,
)  # fmt: skip


def _masked(number: str) -> str:
    from telephony.services.calls import masked_number

    return masked_number(number)


# --- contacts -------------------------------------------------------------------------------------


@admin.register(Contact)
class ContactAdmin(ReadOnlyModelAdmin):
    list_display = ("name", "phone_masked", "organization", "time_zone", "created_at")
    list_select_related = ("organization",)
    search_fields = ("name", "organization__name", "organization__slug")
    ordering = ("organization__name", "name")
    fields = ("id", "organization", "name", "phone_masked", "time_zone", "created_at", "updated_at")
    readonly_fields = fields

    @admin.display(description="Phone")
    def phone_masked(self, contact):
        return _masked(contact.phone)


@admin.register(ContactImport)
class ContactImportAdmin(ReadOnlyModelAdmin):
    list_display = ("file_name", "organization", "status", "total_rows", "processed_rows", "created_count",
                    "updated_count", "created_at")  # fmt: skip
    list_filter = ("status",)
    list_select_related = ("organization",)
    search_fields = ("file_name", "organization__name", "organization__slug")
    fields = ("id", "organization", "created_by", "file_name", "status", "total_rows", "processed_rows",
              "created_count", "updated_count", "failure", "created_at", "finished_at")  # fmt: skip
    readonly_fields = fields


# --- settings -------------------------------------------------------------------------------------


@admin.register(MessagingProfile)
class MessagingProfileAdmin(ReadOnlyModelAdmin):
    list_display = ("organization", "help_text", "created_at")
    list_select_related = ("organization",)
    search_fields = ("organization__name", "organization__slug")
    fields = ("id", "organization", "help_text", "created_at")
    readonly_fields = fields


@admin.register(NumberMessaging)
class NumberMessagingAdmin(ReadOnlyModelAdmin):
    """Per number: agent replies and A2P 10DLC registration, as last read from Twilio."""

    list_display = ("phone_number", "organization", "agent_replies", "a2p_status", "a2p_campaign_sid", "a2p_checked_at")
    list_filter = ("a2p_status", "agent_replies")
    list_select_related = ("organization", "phone_number")
    search_fields = ("phone_number__number", "a2p_campaign_sid", "organization__name", "organization__slug")
    fields = ("id", "organization", "phone_number", "agent_replies", "a2p_status", "a2p_campaign_sid", "a2p_checked_at")
    readonly_fields = fields


# --- conversations and messages ------------------------------------------------------------------


class MessageStatusInline(BackOfficeInline):
    model = MessageStatusEvent
    fields = ("status", "error_code", "occurred_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(MessageStatusEvent)
class MessageStatusEventAdmin(ReadOnlyModelAdmin):
    """Every step of every text's status, as Twilio reported it: find a delivery problem across texts."""

    list_display = ("occurred_at", "organization", "message", "status", "error_code")
    list_filter = ("status",)
    list_select_related = ("organization", "message")
    search_fields = ("message__twilio_sid", "organization__name", "organization__slug")
    ordering = ("-occurred_at",)
    fields = ("id", "organization", "message", "status", "error_code", "occurred_at")
    readonly_fields = fields


@admin.register(Message)
class MessageAdmin(ReadOnlyModelAdmin):
    list_display = ("created_at", "organization", "direction", "status", "error_code", "segments", "sender_type",
                    "sender_label", "twilio_sid")  # fmt: skip
    list_filter = ("direction", "status", "sender_type", "marketing")
    list_select_related = ("organization",)
    search_fields = ("twilio_sid", "sender_label", "organization__name", "organization__slug")
    ordering = ("-created_at",)
    fields = ("id", "organization", "conversation", "direction", "status", "error_code", "error_meaning", "segments",
              "encoding", "marketing", "sender_type", "sender_label", "twilio_sid", "created_at", "updated_at")  # fmt: skip
    readonly_fields = fields
    inlines = [MessageStatusInline]


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyModelAdmin):
    list_display = ("last_message_at", "organization", "phone_number", "contact_masked", "unread_count", "taken_over_at")
    list_select_related = ("organization", "phone_number", "contact")
    search_fields = ("phone_number__number", "contact__name", "organization__name", "organization__slug")
    ordering = ("-last_message_at",)
    fields = ("id", "organization", "phone_number", "contact_masked", "unread_count", "taken_over_by", "taken_over_at",
              "consecutive_auto_replies", "created_at", "last_message_at")  # fmt: skip
    readonly_fields = fields

    @admin.display(description="Contact")
    def contact_masked(self, conversation):
        return f"{conversation.contact.name or '-'} ({_masked(conversation.contact.phone)})"


# --- subscriptions --------------------------------------------------------------------------------


class SubscriptionChangeInline(BackOfficeInline):
    model = SubscriptionChange
    fields = ("created_at", "subscribed", "via", "keyword", "flagged_for_review", "actor_label")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(SubscriptionChange)
class SubscriptionChangeAdmin(ReadOnlyModelAdmin):
    """Every opt-out and opt-in, newest first: flagged free-text readings can be listed for a review."""

    list_display = ("created_at", "organization", "subscribed", "via", "keyword", "flagged_for_review", "actor_label")
    list_filter = ("via", "subscribed", "flagged_for_review")
    list_select_related = ("organization",)
    search_fields = ("keyword", "actor_label", "organization__name", "organization__slug")
    ordering = ("-created_at",)
    fields = ("id", "organization", "subscription", "subscribed", "via", "keyword", "message", "flagged_for_review",
              "actor_label", "created_at")  # fmt: skip
    readonly_fields = fields


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyModelAdmin):
    """Opt-outs per (our number, recipient): the state and its history (also in the audit log)."""

    list_display = ("phone_number", "recipient_masked", "organization", "subscribed", "needs_review", "changed_at")
    list_filter = ("subscribed", "needs_review")
    list_select_related = ("organization", "phone_number")
    search_fields = ("phone_number__number", "organization__name", "organization__slug")
    ordering = ("-changed_at",)
    fields = ("id", "organization", "phone_number", "recipient_masked", "subscribed", "needs_review", "changed_at")
    readonly_fields = fields
    inlines = [SubscriptionChangeInline]

    @admin.display(description="Recipient")
    def recipient_masked(self, subscription):
        return _masked(subscription.recipient)
