"""Telephony's records in the back office: listed and searchable, never a secret, a token hash or a number in full."""

from __future__ import annotations

import pytest
from django.urls import reverse

from jagcall.kernel.webhooks.models import ReceivedWebhook
from telephony.models import BrowserCallingApp
from telephony.services.calls import masked_number
from telephony.services.streams import stream_token_issue
from telephony.tests.tenancy import OBJECT_KWARGS

pytestmark = pytest.mark.django_db


def test_browser_calling_app_never_shows_its_key_secret(staff_client, organization):
    app = BrowserCallingApp.objects.create(
        organization=organization, account_sid="AC" + "1" * 32, api_key_sid="SK" + "2" * 32,
        api_key_secret="the-signing-secret-of-this-key", twiml_app_sid="AP" + "3" * 32,
    )  # fmt: skip
    page = staff_client.get(reverse("admin:telephony_browsercallingapp_change", args=[app.pk])).content.decode()
    assert app.twiml_app_sid in page and app.api_key_sid in page
    assert "the-signing-secret-of-this-key" not in page


def test_stream_tokens_show_when_they_were_used_never_their_hash(staff_client, organization):
    from telephony.models import Call

    call = Call.objects.for_org(organization).get(pk=OBJECT_KWARGS["call_id"](organization))
    raw = stream_token_issue(call)
    token = call.stream_tokens.for_org(organization).get()
    page = staff_client.get(reverse("admin:telephony_streamtoken_change", args=[token.pk])).content.decode()
    assert token.token_hash not in page and raw not in page


def test_call_events_list_masks_nothing_personal_and_finds_by_organization(staff_client, organization):
    from telephony.models import Call, CallEvent

    call = Call.objects.for_org(organization).get(pk=OBJECT_KWARGS["call_id"](organization))
    CallEvent.objects.create(organization=organization, call=call, kind="ringing", details={"sequence": 0})
    response = staff_client.get(reverse("admin:telephony_callevent_changelist"), {"q": organization.slug})
    assert list(response.context["cl"].result_list)[0].call_id == call.pk
    assert call.counterpart_number not in response.content.decode()
    assert masked_number(call.counterpart_number) != call.counterpart_number


def test_received_webhooks_are_searchable(staff_client, organization):
    ReceivedWebhook.objects.create(provider="twilio", event_id="CA-test-delivery", organization_id=organization.pk)
    hooks = staff_client.get(reverse("admin:webhooks_receivedwebhook_changelist"), {"q": "CA-test-delivery"})
    assert [r.event_id for r in hooks.context["cl"].result_list] == ["CA-test-delivery"]
