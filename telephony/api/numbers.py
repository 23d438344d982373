"""API: phone numbers.

- ``GET /api/v1/numbers``: the organization's held numbers (cursor-paginated);
- ``POST /api/v1/numbers``: buy ``{phone_number}`` (from a search) or ``{country, area_code}`` (any number there);
- ``GET /api/v1/numbers/available?country=US&area_code=415&contains=55``: numbers Twilio offers;
- ``GET /api/v1/numbers/{number_id}``, ``PATCH {agent_id | null}`` (who answers), ``DELETE`` (release);
- ``POST /api/v1/numbers/import {twilio_sid}``: a number of the organization's own Twilio account.

Reading needs ``numbers:read``; the rest ``numbers:write`` (owners' and admins' rights).
Twilio's refusals are 400 ``provider_refused`` (503 ``provider_unavailable`` when it may work later)
with a message saying what to do; nothing is written then.
"""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from accounts.api.base import OrganizationAPIView
from accounts.tenancy import get_for_org_or_404
from jagcall.kernel.api.pagination import CursorPagination
from telephony.models import Agent, NumberSource, PhoneNumber
from telephony.selectors.numbers import phone_number_get, phone_number_list
from telephony.services import numbers as services


class NumberOutputSerializer(serializers.Serializer):
    class AgentSerializer(serializers.Serializer):
        id = serializers.UUIDField()
        name = serializers.CharField()

    id = serializers.UUIDField()
    number = serializers.CharField(help_text="E.164")
    friendly_name = serializers.CharField()
    country = serializers.CharField(help_text="ISO 3166 code")
    source = serializers.ChoiceField(choices=NumberSource.choices)
    voice_enabled = serializers.BooleanField()
    sms_enabled = serializers.BooleanField()
    agent = AgentSerializer(allow_null=True, help_text="The agent answering calls to this number")
    twilio_sid = serializers.CharField()
    created_at = serializers.DateTimeField()


class NumberCursorPagination(CursorPagination):
    ordering = ("number", "id")


class NumberListApi(OrganizationAPIView):
    """GET -> the held numbers; POST -> buy one (pointed at JagCall's voice and status webhooks)."""

    required_scopes = {"GET": "numbers:read", "POST": "numbers:write"}
    OutputSerializer = NumberOutputSerializer

    class InputSerializer(serializers.Serializer):
        phone_number = serializers.CharField(required=False, allow_blank=True, max_length=40, help_text="E.164, from /numbers/available")
        country = serializers.CharField(required=False, default="US", max_length=2)
        area_code = serializers.CharField(required=False, allow_blank=True, max_length=5, help_text="US and CA: any number in it")

    def get_org_queryset(self):
        return PhoneNumber.objects.all()

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request):
        paginator = NumberCursorPagination()
        page = paginator.paginate_queryset(phone_number_list(organization=self.organization), request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        number = services.number_buy(organization=self.organization, actor=request.auth, **serializer.validated_data)
        return Response(self.OutputSerializer(number).data, status=status.HTTP_201_CREATED)


class NumberAvailableApi(OrganizationAPIView):
    """GET -> local numbers Twilio offers (up to 20), to buy with POST /numbers {phone_number}."""

    required_scopes = {"GET": "numbers:write"}

    class QuerySerializer(serializers.Serializer):
        country = serializers.CharField(required=False, default="US", max_length=2)
        area_code = serializers.CharField(required=False, allow_blank=True, default="", max_length=5)
        contains = serializers.CharField(required=False, allow_blank=True, default="", max_length=16)

    class OutputSerializer(serializers.Serializer):
        phone_number = serializers.CharField()
        friendly_name = serializers.CharField()
        locality = serializers.CharField()
        region = serializers.CharField()
        country = serializers.CharField()
        voice = serializers.BooleanField()
        sms = serializers.BooleanField()

    def get_org_queryset(self):
        return PhoneNumber.objects.all()

    @extend_schema(
        parameters=[QuerySerializer],
        responses=OutputSerializer(many=True),
        description="Searching Twilio is part of buying, so it needs numbers:write.",
    )
    def get(self, request):
        serializer = self.QuerySerializer(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        offers = services.number_search(organization=self.organization, actor=request.auth, **serializer.validated_data)
        return Response({"results": self.OutputSerializer(offers, many=True).data})


class NumberDetailApi(OrganizationAPIView):
    """GET -> one number; PATCH {agent_id} -> who answers it (null: nobody); DELETE -> release it."""

    required_scopes = {"GET": "numbers:read", "PATCH": "numbers:write", "DELETE": "numbers:write"}
    OutputSerializer = NumberOutputSerializer

    class InputSerializer(serializers.Serializer):
        agent_id = serializers.UUIDField(allow_null=True)

    def get_org_queryset(self):
        return PhoneNumber.objects.all()

    @extend_schema(responses=OutputSerializer)
    def get(self, request, number_id):
        return Response(self.OutputSerializer(phone_number_get(organization=self.organization, id=number_id)).data)

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def patch(self, request, number_id):
        number = phone_number_get(organization=self.organization, id=number_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        agent_id = serializer.validated_data["agent_id"]
        agent = get_for_org_or_404(Agent, organization=self.organization, id=agent_id) if agent_id else None
        number = services.number_assign(organization=self.organization, actor=request.auth, number=number, agent=agent)
        return Response(self.OutputSerializer(number).data)

    @extend_schema(responses={204: None})
    def delete(self, request, number_id):
        number = phone_number_get(organization=self.organization, id=number_id)
        services.number_release(organization=self.organization, actor=request.auth, number=number)
        return Response(status=status.HTTP_204_NO_CONTENT)


class NumberImportApi(OrganizationAPIView):
    """POST {twilio_sid} -> bring a number of the organization's own Twilio account to JagCall."""

    required_scopes = {"POST": "numbers:write"}
    OutputSerializer = NumberOutputSerializer

    class InputSerializer(serializers.Serializer):
        twilio_sid = serializers.CharField(max_length=34, help_text="PN…, the number's SID in your Twilio account")

    def get_org_queryset(self):
        return PhoneNumber.objects.all()

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        number = services.number_import(
            organization=self.organization, actor=request.auth, twilio_sid=serializer.validated_data["twilio_sid"]
        )
        return Response(self.OutputSerializer(number).data, status=status.HTTP_201_CREATED)


urlpatterns = [
    path("numbers", NumberListApi.as_view(), name="number-list"),
    path("numbers/available", NumberAvailableApi.as_view(), name="number-available"),
    path("numbers/import", NumberImportApi.as_view(), name="number-import"),
    path("numbers/<uuid:number_id>", NumberDetailApi.as_view(), name="number-detail"),
]
