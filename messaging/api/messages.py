"""API: texts at /api/v1/messages (list, send one), /api/v1/messages/{id}, and /api/v1/conversations.

Reading needs ``messages:read``; sending ``messages:write``. Sending goes through
``messaging.services.sending.message_send``: the pre-send gate's refusals are 422 with the rule's
code (``invalid_number``, ``no_messaging_rights``, ``sender_number``, ``do_not_call``,
``opted_out``, ``quiet_hours``) and a message that says what to do; nothing is written and
Twilio is not asked. Twilio not taking the text is 502 (503 when retrying may help)
``provider_error``, nothing stored. A POST may carry an ``Idempotency-Key``: the same key and
body within 24 hours answer the first send again, and Twilio is asked once.
"""

from __future__ import annotations

from django.db.models import Prefetch
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from accounts.api.base import OrganizationAPIView
from jagcall.kernel.api.pagination import CursorPagination
from messaging.models import Conversation, Direction, Message, MessageStatus, MessageStatusEvent
from messaging.selectors import conversations_for
from messaging.services.gate import SendRefused
from messaging.services.sending import MAX_BODY, MAX_MEDIA, message_send
from telephony.models import PhoneNumber

_ERROR = {"$ref": "#/components/schemas/Error"}
_RULE_CODES = "`invalid_number`, `no_messaging_rights`, `sender_number`, `do_not_call`, `opted_out`, `quiet_hours`"


class StatusEventSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=MessageStatus.choices)
    error_code = serializers.IntegerField(allow_null=True)
    occurred_at = serializers.DateTimeField()


class MessageOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    conversation_id = serializers.UUIDField()
    direction = serializers.ChoiceField(choices=Direction.choices)
    from_number = serializers.SerializerMethodField(help_text="E.164: who sent it (ours on an outbound text)")
    to_number = serializers.SerializerMethodField(help_text="E.164: who received it")
    body = serializers.CharField()
    media_urls = serializers.ListField(child=serializers.CharField())
    status = serializers.ChoiceField(choices=MessageStatus.choices)
    error_code = serializers.IntegerField(allow_null=True, help_text="Twilio's error code when it failed")
    error_message = serializers.CharField(source="error_meaning", help_text="What the error code means")
    segments = serializers.IntegerField()
    encoding = serializers.CharField(help_text="GSM-7 or UCS-2")
    marketing = serializers.BooleanField()
    sender_type = serializers.CharField(help_text="contact, member, api_key, agent or system")
    sender = serializers.CharField(source="sender_label", help_text="Who sent it, as the audit log names them")
    twilio_sid = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    status_events = serializers.SerializerMethodField()

    def get_from_number(self, message) -> str:
        conversation = message.conversation
        return conversation.phone_number.number if message.direction == Direction.OUTBOUND else conversation.contact.phone

    def get_to_number(self, message) -> str:
        conversation = message.conversation
        return conversation.contact.phone if message.direction == Direction.OUTBOUND else conversation.phone_number.number

    @extend_schema_field(StatusEventSerializer(many=True))
    def get_status_events(self, message) -> list[dict]:
        return StatusEventSerializer(message.status_events.all(), many=True).data


class MessageSendInputSerializer(serializers.Serializer):
    to = serializers.CharField(max_length=40, help_text="The recipient in E.164, e.g. +14155550100")
    from_number_id = serializers.UUIDField(required=False, help_text="The sending number: one of your numbers' ids")
    from_ = serializers.CharField(required=False, max_length=40, help_text="Or the sending number in E.164")
    body = serializers.CharField(
        required=False, allow_blank=True, max_length=MAX_BODY, trim_whitespace=False,
        help_text=f"The text, up to {MAX_BODY} characters",
    )  # fmt: skip
    media_urls = serializers.ListField(
        child=serializers.CharField(max_length=2000), required=False, max_length=MAX_MEDIA,
        help_text="Public https URLs of images to send (MMS)",
    )  # fmt: skip
    marketing = serializers.BooleanField(
        required=False, default=False,
        help_text="A marketing text: sent only 08:00-21:00 in the recipient's local time",
    )  # fmt: skip

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields

    def validate(self, data):
        if ("from_number_id" in data) == ("from" in data):
            raise ValidationError(
                {"from": ["Give the sending number: either from_number_id (one of your numbers' ids) or from (its E.164)."]}
            )
        return data


class ConversationOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    phone_number = serializers.CharField(source="phone_number.number", help_text="Your number, E.164")
    contact_id = serializers.UUIDField()
    contact_name = serializers.CharField(source="contact.name")
    contact_number = serializers.CharField(source="contact.phone", help_text="The contact's number, E.164")
    unread_count = serializers.IntegerField()
    last_message_at = serializers.DateTimeField()
    agent_paused = serializers.BooleanField(help_text="A member took the thread over: the agent does not answer")


class NewestFirst(CursorPagination):
    ordering = ("-created_at", "-id")


class ConversationPagination(CursorPagination):
    ordering = ("-last_message_at", "-id")


def _sender(organization, data) -> PhoneNumber:
    numbers = PhoneNumber.objects.for_org(organization).filter(released_at__isnull=True)
    if "from_number_id" in data:
        found, shown = numbers.filter(id=data["from_number_id"]).first(), str(data["from_number_id"])
    else:
        found, shown = numbers.filter(number=data["from"].strip()).first(), data["from"].strip()
    if found is None:
        raise SendRefused(
            "sender_number",
            f"{shown} is not one of {organization.name}'s active numbers. List them with GET /api/v1/numbers.",
            "from",
        )
    return found


def _messages(organization):
    timeline = Prefetch("status_events", queryset=MessageStatusEvent.objects.for_org(organization))
    return (
        Message.objects.for_org(organization)
        .select_related("conversation__phone_number", "conversation__contact")
        .prefetch_related(timeline)
    )


class MessageListApi(OrganizationAPIView):
    """GET -> the organization's texts, newest first (cursor-paginated); POST -> send a text."""

    required_scopes = {"GET": "messages:read", "POST": "messages:write"}

    def get_org_queryset(self):
        return Message.objects.all()

    @extend_schema(
        parameters=[OpenApiParameter("conversation_id", OpenApiTypes.UUID, description="Only this conversation")],
        responses=MessageOutputSerializer(many=True),
    )
    def get(self, request):
        queryset = _messages(self.organization)
        conversation_id = request.query_params.get("conversation_id")
        if conversation_id:
            try:
                queryset = queryset.filter(conversation_id=serializers.UUIDField().to_internal_value(conversation_id))
            except ValidationError:
                raise ValidationError({"conversation_id": ["Give a conversation's id (a UUID)."]}) from None
        paginator = NewestFirst()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(MessageOutputSerializer(page, many=True).data)

    @extend_schema(
        request=MessageSendInputSerializer,
        responses={
            201: MessageOutputSerializer,
            422: OpenApiResponse(
                response=_ERROR,
                description=f"The pre-send gate refused the text; `error.code` names the rule ({_RULE_CODES}) and "
                "`error.message` says what to do. Nothing was written and nothing sent.",
            ),
            502: OpenApiResponse(response=_ERROR, description="`provider_error`: Twilio refused the text."),
            503: OpenApiResponse(response=_ERROR, description="`provider_error`: Twilio could not be reached; retry."),
        },
    )
    def post(self, request):
        serializer = MessageSendInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        message = message_send(
            organization=self.organization,
            actor=request.auth,
            sender=_sender(self.organization, data),
            to=data["to"],
            body=data.get("body", ""),
            media_urls=data.get("media_urls", []),
            marketing=data.get("marketing", False),
        )
        message = _messages(self.organization).get(pk=message.pk)
        response = Response(MessageOutputSerializer(message).data, status=status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/messages/{message.id}"
        return response


class MessageDetailApi(OrganizationAPIView):
    """GET -> one text with its status timeline."""

    required_scopes = {"GET": "messages:read"}

    def get_org_queryset(self):
        return Message.objects.all()

    @extend_schema(responses=MessageOutputSerializer)
    def get(self, request, message_id):
        message = _messages(self.organization).filter(pk=message_id).first()
        if message is None:
            raise NotFound("No message of your organization has this id.")
        return Response(MessageOutputSerializer(message).data)


class ConversationListApi(OrganizationAPIView):
    """GET -> the organization's conversations, most recent first; ``q`` finds a contact by name or number."""

    required_scopes = {"GET": "messages:read"}

    def get_org_queryset(self):
        return Conversation.objects.all()

    @extend_schema(
        parameters=[OpenApiParameter("q", OpenApiTypes.STR, description="A contact's name (part) or number (exact)")],
        responses=ConversationOutputSerializer(many=True),
    )
    def get(self, request):
        queryset = conversations_for(self.organization, query=request.query_params.get("q", "")[:100])
        paginator = ConversationPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(ConversationOutputSerializer(page, many=True).data)


urlpatterns = [
    path("messages", MessageListApi.as_view(), name="message-list"),
    path("messages/<uuid:message_id>", MessageDetailApi.as_view(), name="message-detail"),
    path("conversations", ConversationListApi.as_view(), name="conversation-list"),
]
