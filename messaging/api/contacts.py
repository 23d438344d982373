"""API: contacts at /api/v1/contacts (list with ``?q=``, create) and /api/v1/contacts/{id} (read, change, delete).

Reading needs ``contacts:read``; the rest ``contacts:write``. Every rule is the service's
(messaging.services.contacts): a wrong field is 400 with the field in ``error.details`` and a
message saying what to write (``invalid_number``, ``invalid_time_zone``, ``invalid``); a number
that is already a contact's is 409 ``duplicate_contact``; another organization's or an unknown id
is 404. A POST may carry an ``Idempotency-Key``: the same key and body within 24 hours answer the
first creation again.
"""

from __future__ import annotations

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from jagcall.kernel.api.pagination import CursorPagination
from accounts.api.base import OrganizationAPIView
from messaging.models import Contact
from messaging.selectors import contacts_for
from messaging.services.contacts import contact_create, contact_delete, contact_update

_ERROR = {"$ref": "#/components/schemas/Error"}
_INVALID = OpenApiResponse(
    response=_ERROR,
    description="A field is wrong: `error.details` names it and `error.message` says what to write "
    "(`invalid_number`, `invalid_time_zone`, `invalid`). Nothing was written.",
)
_DUPLICATE = OpenApiResponse(
    response=_ERROR, description="`duplicate_contact`: the number is already one of your contacts. Nothing was written."
)
_NOT_FOUND = OpenApiResponse(response=_ERROR, description="No contact of your organization has this id.")


class ContactOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    phone = serializers.CharField(help_text="E.164, e.g. +14155550100")
    name = serializers.CharField()
    time_zone = serializers.CharField(help_text="IANA name as set, or empty")
    custom_fields = serializers.DictField(
        child=serializers.CharField(), help_text="Your own fields: names and text values"
    )
    notes = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class _ContactFieldsSerializer(serializers.Serializer):
    # Lengths are the service's rules (clean_contact), checked there with a message that names the limit.
    name = serializers.CharField(required=False, allow_blank=True, help_text="Up to 120 characters")
    time_zone = serializers.CharField(
        required=False, allow_blank=True, help_text="IANA name, e.g. America/New_York; empty: the number's"
    )
    custom_fields = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False),
        required=False,
        help_text="Your own fields, up to 30: names (1-64 characters) and text values (up to 500). Replaces them all.",
    )
    notes = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, help_text="Up to 5,000 characters"
    )


class ContactCreateInputSerializer(_ContactFieldsSerializer):
    phone = serializers.CharField(max_length=40, help_text="E.164 with the country code, e.g. +14155550100")


class ContactUpdateInputSerializer(_ContactFieldsSerializer):
    phone = serializers.CharField(required=False, max_length=40, help_text="E.164 with the country code")


class ContactPagination(CursorPagination):
    ordering = ("-created_at", "-id")


def _contact(organization, contact_id) -> Contact:
    contact = Contact.objects.for_org(organization).filter(pk=contact_id).first()
    if contact is None:
        raise NotFound("No contact of your organization has this id.")
    return contact


def _created(contact: Contact) -> Response:
    response = Response(ContactOutputSerializer(contact).data, status=status.HTTP_201_CREATED)
    response["Location"] = f"/api/v1/contacts/{contact.id}"
    return response


class ContactListApi(OrganizationAPIView):
    """GET -> the organization's contacts, newest first (cursor-paginated); POST -> add a contact."""

    required_scopes = {"GET": "contacts:read", "POST": "contacts:write"}

    def get_org_queryset(self):
        return Contact.objects.all()

    @extend_schema(
        parameters=[
            OpenApiParameter("q", OpenApiTypes.STR, description="A part of the name, or a whole number (E.164)")
        ],
        responses=ContactOutputSerializer(many=True),
    )
    def get(self, request):
        queryset = contacts_for(self.organization, query=request.query_params.get("q", "")[:100])
        paginator = ContactPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(ContactOutputSerializer(page, many=True).data)

    @extend_schema(
        request=ContactCreateInputSerializer,
        responses={201: ContactOutputSerializer, 400: _INVALID, 409: _DUPLICATE},
    )
    def post(self, request):
        serializer = ContactCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        contact = contact_create(organization=self.organization, actor=request.auth, data=data)
        return _created(contact)


class ContactDetailApi(OrganizationAPIView):
    """GET -> one contact; PATCH -> change the fields given; DELETE -> delete it and its text conversations."""

    required_scopes = {"GET": "contacts:read", "PATCH": "contacts:write", "DELETE": "contacts:write"}

    def get_org_queryset(self):
        return Contact.objects.all()

    @extend_schema(responses={200: ContactOutputSerializer, 404: _NOT_FOUND})
    def get(self, request, contact_id):
        return Response(ContactOutputSerializer(_contact(self.organization, contact_id)).data)

    @extend_schema(
        request=ContactUpdateInputSerializer,
        responses={200: ContactOutputSerializer, 400: _INVALID, 404: _NOT_FOUND, 409: _DUPLICATE},
    )
    def patch(self, request, contact_id):
        contact = _contact(self.organization, contact_id)
        serializer = ContactUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        contact = contact_update(
            organization=self.organization, actor=request.auth, contact=contact, data=dict(serializer.validated_data)
        )
        return Response(ContactOutputSerializer(contact).data)

    @extend_schema(responses={204: None, 404: _NOT_FOUND})
    def delete(self, request, contact_id):
        contact = _contact(self.organization, contact_id)
        contact_delete(organization=self.organization, actor=request.auth, contact=contact)
        return Response(status=status.HTTP_204_NO_CONTENT)


urlpatterns = [
    path("contacts", ContactListApi.as_view(), name="contact-list"),
    path("contacts/<uuid:contact_id>", ContactDetailApi.as_view(), name="contact-detail"),
]
