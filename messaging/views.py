"""Portal pages of messaging, under /o/<org_slug>/messages/: the inbox, a thread, a new message.

- The inbox lists the organization's conversations, newest first, 50 a page, with a search by a
  contact's name (any part) or a whole number; each row shows the last message (decrypted for
  this page only: one query for the page's last messages) and its unread count.
- A thread shows its messages oldest to newest (the last 100; earlier ones a page at a time), who
  sent each, its status timeline and Twilio's error; the pair's subscription (an opt-out, its
  history, and a free-text opt-out's review); the agent's take-over; and the composer. Opening it
  marks it read (idempotent; never audited).
- Sending goes through ``message_send`` with the member as actor; a refusal is shown at the field it
  concerns and nothing is sent.
- Both pages follow the organization's live events (static/js/inbox.js).
- Simulated mode: "Simulate an incoming text" has the Twilio stand-in text one of the numbers.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Prefetch, Q
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View

from accounts.mixins import OrganizationViewMixin
from accounts.tenancy import get_for_org_or_404
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.providers import simulated_mode
from messaging.forms import MessageComposeForm, SimulateTextForm, ThreadReplyForm, sms_numbers
from messaging.models import (
    A2PStatus, Conversation, Direction, Message, MessageStatus, MessageStatusEvent, NumberMessaging, SenderType,
    Subscription, SubscriptionChange,
)  # fmt: skip
from messaging.segments import count_segments
from messaging.selectors import conversation_messages, conversations_for, subscription_for
from messaging.services import conversations as conversation_services
from messaging.services import subscriptions as subscription_services
from messaging.services.a2p import needs_a2p
from messaging.services.gate import SendRefused
from messaging.services.sending import MAX_BODY, MessageNotSent, message_send
from messaging.services.simulated_texts import simulated_text_receive

PERMISSION = "product.use"
INBOX_PAGE_SIZE = 50
THREAD_PAGE_SIZE = 100
PREVIEW_CHARS = 120
SEARCH_MAX = 64
A2P_WARNING = (
    "This US number is not registered for A2P 10DLC; carriers may block its texts. Register it in Twilio."
)
SIMULATED_SENDER = "+14155550134"  # as the simulated caller: a fictional 555-01xx number
SIMULATED_TEXT = "Hi! Do you have an appointment free on Thursday afternoon?"

# How the page names each kind of sender (static/js/inbox.js receives the same table).
SENDER_KINDS = {
    SenderType.CONTACT: "Contact",
    SenderType.MEMBER: "Member",
    SenderType.API_KEY: "API",
    SenderType.AGENT: "Agent",
    SenderType.SYSTEM: "Automatic reply",
}
# The gate's and the service's fields -> the composer's (None: shown above the composer).
COMPOSE_FIELDS = {"to": "to", "from": "from_number", "body": "body", "media_urls": None}
REPLY_FIELDS = {"body": "body"}


def events_url(organization) -> str:
    return f"/ws/o/{organization.slug}/events/"


def live_labels() -> dict:
    """What inbox.js needs to draw a message as the server does."""
    return {
        "status": dict(MessageStatus.choices),
        "sender_kinds": {str(k): v for k, v in SENDER_KINDS.items()},
        "outbound_prefix": "Sent: ",
        "no_text": "(no text: media only)",
    }


def a2p_status_label(phone_number, settings_row: NumberMessaging | None) -> str | None:
    """For a US long code (not toll-free) whose A2P 10DLC registration is not verified: its registration's state,
    as the warning before sending shows it; else None (no warning)."""
    if not needs_a2p(phone_number.number):
        return None
    status = settings_row.a2p_status if settings_row is not None else A2PStatus.UNKNOWN
    if status in (A2PStatus.VERIFIED, A2PStatus.NOT_REQUIRED):
        return None
    return A2PStatus(status).label


def _a2p_rows(organization, numbers) -> dict:
    ids = [n.id for n in numbers]
    if not ids:
        return {}
    rows = NumberMessaging.objects.for_org(organization).filter(phone_number_id__in=ids)
    return {row.phone_number_id: row for row in rows}


def _preview(message: Message | None) -> str:
    if message is None:
        return ""
    text = " ".join((message.body or "").split())
    if not text:
        return live_labels()["no_text"] if message.media_urls else ""
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _last_messages(organization, conversations) -> dict:
    """Each conversation's last message, in one query (PostgreSQL's DISTINCT ON)."""
    ids = [c.id for c in conversations]
    if not ids:
        return {}
    last = (
        Message.objects.for_org(organization)
        .filter(conversation_id__in=ids)
        .order_by("conversation_id", "-created_at", "-id")
        .distinct("conversation_id")
    )
    return {message.conversation_id: message for message in last}


def _opted_out(organization, conversations) -> dict:
    """(phone number id, contact id) -> the pair's unsubscribed Subscription, in one query."""
    if not conversations:
        return {}
    field = Subscription._meta.get_field("recipient_index")
    wanted = {}
    for conversation in conversations:
        for candidate in field.candidates(conversation.contact.phone, organization_id=organization.id):
            wanted.setdefault((conversation.phone_number_id, candidate), conversation.contact_id)
    rows = Subscription.objects.for_org(organization).filter(
        subscribed=False,
        phone_number_id__in={c.phone_number_id for c in conversations},
        recipient_index__in={candidate for _number, candidate in wanted},
    )
    found = {}
    for row in rows:
        contact_id = wanted.get((row.phone_number_id, row.recipient_index))
        if contact_id is not None:
            found[(row.phone_number_id, contact_id)] = row
    return found


def inbox_rows(organization, conversations) -> list[dict]:
    last = _last_messages(organization, conversations)
    opted_out = _opted_out(organization, conversations)
    rows = []
    for conversation in conversations:
        message = last.get(conversation.id)
        subscription = opted_out.get((conversation.phone_number_id, conversation.contact_id))
        rows.append({
            "conversation": conversation,
            "contact": conversation.contact,
            "our_number": conversation.phone_number.number,
            "last_message": message,
            "outbound": message is not None and message.direction == Direction.OUTBOUND,
            "preview": _preview(message),
            "opted_out": subscription is not None,
            "needs_review": bool(subscription and subscription.needs_review),
        })  # fmt: skip
    return rows


def sender_name(message: Message, contact) -> str:
    if message.sender_type == SenderType.CONTACT:
        return contact.display_name
    if message.sender_type == SenderType.SYSTEM:
        return "JagCall"  # its kind says what it was (an automatic reply)
    return message.sender_label or SENDER_KINDS.get(message.sender_type, "")


def message_rows(messages_, contact) -> list[dict]:
    return [
        {
            "message": message,
            "sender": sender_name(message, contact),
            "kind": SENDER_KINDS.get(message.sender_type, message.sender_type),
            "timeline": list(message.status_events.all()),
            "failed": message.status in (MessageStatus.FAILED, MessageStatus.UNDELIVERED),
        }
        for message in messages_
    ]


def _conversation_get(organization, conversation_id) -> Conversation:
    return get_for_org_or_404(
        Conversation.objects.select_related("contact", "phone_number", "phone_number__agent", "taken_over_by"),
        organization=organization,
        id=conversation_id,
    )


def _thread_messages(conversation: Conversation, before: str | None) -> tuple[list[Message], bool, bool]:
    """(the messages shown, oldest first; whether earlier ones exist; whether this is an earlier page)."""
    # The selector's plain prefetch of status events is not scoped (the fail-closed manager refuses it): scoped here.
    events = MessageStatusEvent.objects.for_org(conversation.organization_id).order_by("occurred_at", "id")
    queryset = conversation_messages(conversation).prefetch_related(None).prefetch_related(
        Prefetch("status_events", queryset=events)
    )
    anchor = None
    if before:
        try:
            anchor = queryset.filter(id=uuid.UUID(before)).first()
        except ValueError:
            anchor = None
        if anchor is None:
            raise Http404("No such message in this conversation.")
        queryset = queryset.filter(
            Q(created_at__lt=anchor.created_at) | Q(created_at=anchor.created_at, id__lt=anchor.id)
        )
    newest = list(queryset.order_by("-created_at", "-id")[: THREAD_PAGE_SIZE + 1])
    has_earlier = len(newest) > THREAD_PAGE_SIZE
    shown = list(reversed(newest[:THREAD_PAGE_SIZE]))
    return shown, has_earlier, anchor is not None


def subscription_context(conversation: Conversation) -> dict:
    subscription = subscription_for(conversation.phone_number, conversation.contact.phone)
    if subscription is None:
        return {"subscription": None, "changes": [], "review_change": None}
    changes = list(
        SubscriptionChange.objects.for_org(conversation.organization_id)
        .filter(subscription=subscription)
        .select_related("message")
        .order_by("-created_at", "-id")[:20]
    )
    review = None
    if subscription.needs_review and not subscription.subscribed:
        review = next((c for c in changes if c.flagged_for_review and not c.subscribed), None)
    return {"subscription": subscription, "changes": changes, "review_change": review}


def agent_context(conversation: Conversation) -> dict:
    answers = conversation_services.agent_answers(conversation)
    return {
        "agent": conversation.phone_number.agent if answers else None,
        "agent_answers": answers,
        "show_take_over": answers or conversation.taken_over_at is not None,
    }


def _simulate_form(organization, *, conversation: Conversation | None = None, data=None) -> SimulateTextForm | None:
    if not simulated_mode():
        return None
    initial = {"from_number": SIMULATED_SENDER, "body": SIMULATED_TEXT}
    if conversation is not None:
        initial.update(
            phone_number=conversation.phone_number_id, from_number=conversation.contact.phone,
            conversation=conversation.id,
        )  # fmt: skip
    form = SimulateTextForm(data, initial=initial, organization=organization, auto_id="id_simulate_%s")
    return form


def _segments(form) -> dict:
    body = form.data.get("body", "") if form.is_bound else ""
    count = count_segments(str(body).replace("\r\n", "\n"))
    return {"segment_count": count, "max_body": MAX_BODY}


def _apply_send_error(form, error: ApplicationError, fields: dict) -> int:
    field = fields.get(error.field or "")
    form.add_error(field if field in form.fields else None, error.message)
    if isinstance(error, SendRefused):
        return 422
    return error.status if isinstance(error, MessageNotSent) else (error.status or 400)


class InboxView(OrganizationViewMixin, View):
    """The organization's conversations, newest first, 50 a page, searchable."""

    permission_required = PERMISSION
    template_name = "messaging/inbox.html"

    def get(self, request, org_slug):
        query = request.GET.get("q", "").strip()[:SEARCH_MAX]
        paginator = Paginator(conversations_for(self.organization, query=query), INBOX_PAGE_SIZE)
        page = paginator.get_page(request.GET.get("page"))
        rows = inbox_rows(self.organization, list(page.object_list))
        numbers = list(sms_numbers(self.organization))
        any_conversations = bool(rows) or (
            bool(query) and Conversation.objects.for_org(self.organization).exists()
        )
        context = {
            "rows": rows,
            "page": page,
            "query": query,
            "any_conversations": any_conversations,
            "has_sms_numbers": bool(numbers),
            "sms_numbers": numbers,
            "live_insert": page.number == 1 and not query,
            "live_events_url": events_url(self.organization),
            "live_labels": live_labels(),
            "thread_url_template": reverse(
                "messaging:thread",
                kwargs={"org_slug": self.organization.slug, "conversation_id": "00000000-0000-0000-0000-000000000000"},
            ),
            "simulate_form": _simulate_form(self.organization) if numbers else None,
        }
        return render(request, self.template_name, context)


class _ThreadPage(OrganizationViewMixin, View):
    """The thread page, as its GET and its composer's POST render it."""

    permission_required = PERMISSION
    template_name = "messaging/thread.html"

    def render_thread(self, request, conversation, form, *, status: int = 200):
        before = request.GET.get("before") if request.method == "GET" else None
        shown, has_earlier, earlier_page = _thread_messages(conversation, before)
        settings_row = NumberMessaging.objects.for_org(self.organization).filter(
            phone_number=conversation.phone_number
        ).first()
        context = {
            "conversation": conversation,
            "contact": conversation.contact,
            "phone_number": conversation.phone_number,
            "rows": message_rows(shown, conversation.contact),
            "has_earlier": has_earlier,
            "earliest_id": shown[0].id if shown else None,
            "earlier_page": earlier_page,
            "form": form,
            "a2p_warning": A2P_WARNING,
            "a2p_status": a2p_status_label(conversation.phone_number, settings_row),
            "can_send": conversation.phone_number.sms_enabled and conversation.phone_number.released_at is None,
            "live_events_url": events_url(self.organization),
            "live_labels": live_labels(),
            "simulate_form": _simulate_form(self.organization, conversation=conversation),
            **_segments(form),
            **subscription_context(conversation),
            **agent_context(conversation),
        }
        return render(request, self.template_name, context, status=status)


class ThreadView(_ThreadPage):
    """One conversation: its messages, the pair's subscription, the agent's take-over, the composer.

    Opening it marks it read: a GET that writes, but only the unread count, to 0, however often.
    """

    def get(self, request, org_slug, conversation_id):
        conversation = _conversation_get(self.organization, conversation_id)
        if conversation.unread_count:
            conversation_services.conversation_mark_read(
                organization=self.organization, actor=self.principal, conversation=conversation
            )
        return self.render_thread(request, conversation, ThreadReplyForm())


class ThreadReplyView(_ThreadPage):
    """The thread's composer: a text to the contact from the conversation's number."""

    http_method_names = ["post"]

    def post(self, request, org_slug, conversation_id):
        conversation = _conversation_get(self.organization, conversation_id)
        form = ThreadReplyForm(request.POST)
        if not form.is_valid():
            return self.render_thread(request, conversation, form, status=400)
        try:
            message_send(
                organization=self.organization,
                actor=self.principal,
                sender=conversation.phone_number,
                to=conversation.contact.phone,
                body=form.cleaned_data["body"],
                marketing=form.cleaned_data["marketing"],
            )
        except ApplicationError as error:
            status = _apply_send_error(form, error, REPLY_FIELDS)
            return self.render_thread(request, conversation, form, status=status)
        return redirect("messaging:thread", org_slug=self.organization.slug, conversation_id=conversation.id)


class ThreadReadView(OrganizationViewMixin, View):
    """The open thread saw new messages arrive (inbox.js): its unread count goes back to 0. 204."""

    permission_required = PERMISSION
    http_method_names = ["post"]

    def post(self, request, org_slug, conversation_id):
        conversation = _conversation_get(self.organization, conversation_id)
        conversation_services.conversation_mark_read(
            organization=self.organization, actor=self.principal, conversation=conversation
        )
        return HttpResponse(status=204)


class ThreadTakeOverView(OrganizationViewMixin, View):
    permission_required = PERMISSION
    http_method_names = ["post"]

    def post(self, request, org_slug, conversation_id):
        conversation = _conversation_get(self.organization, conversation_id)
        try:
            conversation = conversation_services.conversation_take_over(
                organization=self.organization, actor=self.principal, conversation=conversation
            )
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            holder = conversation.taken_over_by
            if holder is not None and holder.pk != request.user.pk:
                messages.info(request, f"{holder.email} has already taken this conversation over.")
            else:
                messages.success(
                    request,
                    "You took this conversation over: the agent does not reply here until you hand it back.",
                )
        return redirect("messaging:thread", org_slug=self.organization.slug, conversation_id=conversation.id)


class ThreadReleaseView(OrganizationViewMixin, View):
    permission_required = PERMISSION
    http_method_names = ["post"]

    def post(self, request, org_slug, conversation_id):
        conversation = _conversation_get(self.organization, conversation_id)
        conversation_services.conversation_release(
            organization=self.organization, actor=self.principal, conversation=conversation
        )
        messages.success(request, "The agent answers this conversation again.")
        return redirect("messaging:thread", org_slug=self.organization.slug, conversation_id=conversation.id)


class _OptOutReviewView(OrganizationViewMixin, View):
    """A member's answer to a free-text opt-out of the thread's pair (undo it, or keep it)."""

    permission_required = PERMISSION
    http_method_names = ["post"]

    def post(self, request, org_slug, conversation_id):
        conversation = _conversation_get(self.organization, conversation_id)
        subscription = subscription_for(conversation.phone_number, conversation.contact.phone)
        if subscription is None or subscription.subscribed:
            messages.error(
                request,
                f"{conversation.contact.phone} is subscribed to texts from {conversation.phone_number.number}: "
                "there is no opt-out to review.",
            )
        else:
            try:
                self.decide(conversation, subscription)
            except ApplicationError as error:
                messages.error(request, error.message)
        return redirect("messaging:thread", org_slug=self.organization.slug, conversation_id=conversation.id)

    def decide(self, conversation, subscription):
        raise NotImplementedError


class OptOutUndoView(_OptOutReviewView):
    def decide(self, conversation, subscription):
        subscription_services.subscription_undo_opt_out(
            organization=self.organization, actor=self.principal, subscription=subscription
        )
        messages.success(
            self.request,
            f"The opt-out is undone: {conversation.contact.phone} can be texted from "
            f"{conversation.phone_number.number} again.",
        )


class OptOutKeepView(_OptOutReviewView):
    def decide(self, conversation, subscription):
        subscription_services.subscription_confirm_opt_out(
            organization=self.organization, actor=self.principal, subscription=subscription
        )
        messages.success(
            self.request,
            f"The opt-out stays: nothing is sent to {conversation.contact.phone} from "
            f"{conversation.phone_number.number} until they text START.",
        )


class ComposeView(OrganizationViewMixin, View):
    """A new message: from one of the organization's SMS-capable numbers to any number."""

    permission_required = PERMISSION
    template_name = "messaging/compose.html"

    def _render(self, request, form, *, status: int = 200):
        numbers = list(form.fields["from_number"].queryset)
        a2p = _a2p_rows(self.organization, numbers)
        chosen = form.data.get("from_number") if form.is_bound else form.initial.get("from_number")
        selected = next((n for n in numbers if str(n.id) == str(chosen or "")), numbers[0] if numbers else None)
        warned = {str(n.id): label for n in numbers if (label := a2p_status_label(n, a2p.get(n.id)))}
        context = {
            "form": form,
            "has_sms_numbers": bool(numbers),
            "warned_numbers": warned,
            "a2p_warning": A2P_WARNING,
            "a2p_status": warned.get(str(selected.id)) if selected is not None else None,
            "live_labels": live_labels(),
            **_segments(form),
        }
        return render(request, self.template_name, context, status=status)

    def get(self, request, org_slug):
        initial = {"to": request.GET.get("to", "")[:40]}
        form = MessageComposeForm(initial=initial, organization=self.organization)
        line = request.GET.get("from", "")[:40]
        if line:
            initial["from_number"] = (
                form.fields["from_number"].queryset.filter(number=line).values_list("pk", flat=True).first()
            )
        return self._render(request, form)

    def post(self, request, org_slug):
        form = MessageComposeForm(request.POST, organization=self.organization)
        if not form.is_valid():
            return self._render(request, form, status=400)
        try:
            message = message_send(
                organization=self.organization,
                actor=self.principal,
                sender=form.cleaned_data["from_number"],
                to=form.cleaned_data["to"].strip(),
                body=form.cleaned_data["body"],
                marketing=form.cleaned_data["marketing"],
            )
        except ApplicationError as error:
            status = _apply_send_error(form, error, COMPOSE_FIELDS)
            return self._render(request, form, status=status)
        return redirect("messaging:thread", org_slug=self.organization.slug, conversation_id=message.conversation_id)


class SimulateTextView(OrganizationViewMixin, View):
    """Simulated mode only: the Twilio stand-in texts one of the numbers; the text then arrives live."""

    permission_required = PERMISSION
    http_method_names = ["post"]

    def post(self, request, org_slug):
        if not simulated_mode():
            raise Http404("Simulated texts exist only in simulated mode.")
        form = SimulateTextForm(request.POST, organization=self.organization)
        back = redirect("messaging:inbox", org_slug=self.organization.slug)
        conversation_id = request.POST.get("conversation", "")
        if conversation_id:
            conversation = _conversation_get(self.organization, conversation_id)
            back = redirect("messaging:thread", org_slug=self.organization.slug, conversation_id=conversation.id)
        if not form.is_valid():
            problems = [f"{form.fields[name].label}: {' '.join(errors)}" for name, errors in form.errors.items()
                        if name in form.fields]  # fmt: skip
            messages.error(request, "The simulated text was not sent. " + " ".join(problems))
            return back
        try:
            sender = simulated_text_receive(
                organization=self.organization,
                actor=self.principal,
                phone_number=form.cleaned_data["phone_number"],
                from_number=form.cleaned_data["from_number"],
                body=form.cleaned_data["body"],
            )
        except ApplicationError as error:
            messages.error(request, f"The simulated text was not sent. {error.message}")
            return back
        messages.info(
            request,
            f"Simulated mode: {sender} is texting {form.cleaned_data['phone_number'].number}. No phone is involved; "
            "the text arrives here in a moment, through the same webhook as a real one.",
        )
        return back
