"""The SQL budget of Twilio's voice webhook and status callback: what each request costs the database.

Twilio waits on the voice webhook while the caller hears ringing, and the
status callback comes for every step of every call (docs/performance.md), so
each statement counts. The budgets below are the statements one request makes
today; a change that adds one fails here and has to say why. What each
request must still do is checked beside the count: the signing account's
token, the dedupe record, the call with its numbers encrypted, its timeline,
the audit event and a single-use stream token. The signing account's token is
read once and then kept in the process for a minute (twilio_accounts), as a
running server has it: the signer's own lookup below warms it, so it is not
among the statements counted.

The test wraps each request in its own transaction, so the webhook's
``transaction.atomic()`` shows as a SAVEPOINT / RELEASE pair here (in
production it is BEGIN / COMMIT, which Django does not log); they are not
counted.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from twilio.request_validator import RequestValidator

from compliance.models import AuditEvent
from jagcall.kernel.webhooks.models import ReceivedWebhook
from telephony.models import Call, CallEvent, StreamToken
from telephony.services.twilio_accounts import auth_token_for_account_sid
from telephony.tests.calls_support import line

pytestmark = pytest.mark.django_db

VOICE_BUDGET = 9  # number, dedupe, call by CallSid, calls in progress (plan limit), call, its event, audit head, audit, token
STATUS_BUDGET = 6  # call, dedupe, call locked, event seen before?, event, call updated
CALLER = "+14155550100"


@pytest.fixture
def number(twilio_standin, settings, organization):
    settings.PUBLIC_BASE_URL = "https://app.jagcall.test"
    return line(organization, record=True)


def _signed(client, name: str, params: dict, *, account_sid: str, idempotency: str):
    """Sign first (the signer's own token lookup is not the request's), then POST and count the statements."""
    path = reverse(name)
    token = auth_token_for_account_sid(account_sid)
    signature = RequestValidator(token).compute_signature(settings.PUBLIC_BASE_URL + path, params)
    headers = {"X-Twilio-Signature": signature, "I-Twilio-Idempotency-Token": idempotency}
    with CaptureQueriesContext(connection) as queries:
        response = client.post(path, urlencode(params), content_type="application/x-www-form-urlencoded",
                               headers=headers)  # fmt: skip
    statements = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    return response, statements


def _voice(number, sid: str) -> dict:
    return {"AccountSid": number.account_sid, "CallSid": sid, "CallStatus": "ringing", "From": CALLER,
            "To": number.number, "Direction": "inbound"}  # fmt: skip


def test_the_voice_webhook_stays_within_its_sql_budget_and_does_all_it_must(client, number, organization):
    # A first call warms the process's caches (the organization's keys), as a running server has them.
    _signed(client, "twilio-hooks:voice", _voice(number, "CA" + "0" * 32), account_sid=number.account_sid,
            idempotency="warm")  # fmt: skip
    sid = "CA" + "a" * 32
    response, statements = _signed(client, "twilio-hooks:voice", _voice(number, sid), account_sid=number.account_sid,
                                   idempotency="voice-1")  # fmt: skip
    assert response.status_code == 200
    assert len(statements) <= VOICE_BUDGET, "\n\n".join(statements)

    call = Call.objects.for_org(organization).get(twilio_sid=sid)
    assert (call.status, call.from_number, call.agent_id) == ("ringing", CALLER, number.agent_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT from_number::text FROM telephony_call WHERE id = %s", [call.id])
        assert CALLER.lstrip("+") not in cursor.fetchone()[0]  # stored encrypted
    events = CallEvent.objects.for_org(organization).filter(call=call)
    assert [(e.kind, e.details) for e in events] == [("ringing", {"via": "voice webhook"})]
    audit = AuditEvent.objects.for_org(organization).filter(action="call.received", resource_id=str(call.id))
    assert audit.count() == 1
    received = ReceivedWebhook.objects.filter(provider="twilio", event_id="voice-1")
    assert received.get().organization_id == organization.pk
    token = ET.fromstring(response.content).find("./Connect/Stream/Parameter[@name='token']").get("value")
    stored = StreamToken.objects.for_org(organization).get(call=call)
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest() and stored.used_at is None
    assert ET.fromstring(response.content).find("./Start/Recording") is not None

    # Twilio's retry of the same delivery: the same call, a fresh token, nothing recorded twice.
    retry, statements = _signed(client, "twilio-hooks:voice", _voice(number, sid), account_sid=number.account_sid,
                                idempotency="voice-1")  # fmt: skip
    assert retry.status_code == 200 and len(statements) <= VOICE_BUDGET
    assert Call.objects.for_org(organization).filter(twilio_sid=sid).count() == 1
    assert events.count() == 1 and audit.count() == 1
    assert StreamToken.objects.for_org(organization).filter(call=call).count() == 2


def test_the_status_callback_stays_within_its_sql_budget(client, number, organization):
    sid = "CA" + "b" * 32
    _signed(client, "twilio-hooks:voice", _voice(number, sid), account_sid=number.account_sid, idempotency="v")
    params = {"AccountSid": number.account_sid, "CallSid": sid, "CallStatus": "in-progress", "SequenceNumber": "1"}
    response, statements = _signed(client, "twilio-hooks:status", params, account_sid=number.account_sid,
                                   idempotency="status-1")  # fmt: skip
    assert response.status_code == 204
    assert len(statements) <= STATUS_BUDGET, "\n\n".join(statements)
    call = Call.objects.for_org(organization).get(twilio_sid=sid)
    assert call.status == "in-progress" and call.answered_at is not None
    kinds = list(CallEvent.objects.for_org(organization).filter(call=call).values_list("kind", flat=True))
    assert kinds == ["ringing", "in-progress"]
