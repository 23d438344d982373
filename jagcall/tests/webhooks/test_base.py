"""The base of signed inbound webhooks (jagcall/kernel/webhooks/views.py), through example hooks mounted in tests.

Signature first (before any database read), then the organization, then the
dedupe record and the handler in one transaction; 405, 413, duplicates,
rollback of a failed delivery, the public URL behind a proxy, the log line.
"""

from __future__ import annotations

import hashlib
import logging
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from twilio.request_validator import RequestValidator

from jagcall.kernel.webhooks import SignedWebhookView, TwilioWebhookView, webhook_refused
from jagcall.kernel.webhooks.models import ReceivedWebhook
from jagcall.tests.webhooks.example import Calls, ExampleTwilioHook, hmac_signature

pytestmark = [pytest.mark.django_db, pytest.mark.urls("jagcall.tests.webhooks.example")]

TOKEN = "example-auth-token-0123456789abcdef"
SID = "AC" + "1" * 32
PATH = "/hooks/example/twilio/voice/?attempt=1"
PUBLIC = "https://hooks.jagcall.example"


@pytest.fixture(autouse=True)
def twilio(settings, organization):
    settings.TWILIO_AUTH_TOKEN = TOKEN
    settings.PUBLIC_BASE_URL = PUBLIC
    Calls.reset()
    ExampleTwilioHook.accounts = {SID: organization.pk}
    yield settings
    ExampleTwilioHook.accounts = {}
    Calls.reset()


@pytest.fixture
def refusals():
    seen = []

    def receiver(sender, **kwargs):
        seen.append(kwargs)

    webhook_refused.connect(receiver, weak=False, dispatch_uid="test-refusals")
    yield seen
    webhook_refused.disconnect(dispatch_uid="test-refusals")


def params(**extra):
    return {"AccountSid": SID, "CallSid": "CA" + "2" * 32, "CallStatus": "ringing", "From": "+15005550006", **extra}


def sign(url: str, data: dict, token: str = TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, data)


def post(client, data, *, path=PATH, signature=None, idempotency="idem-1", url=None, token=TOKEN, **headers):
    if signature is None:
        signature = sign(url or PUBLIC + path, data, token)
    if signature:
        headers["X-Twilio-Signature"] = signature
    if idempotency:
        headers["I-Twilio-Idempotency-Token"] = idempotency
    # As Twilio posts: a URL-encoded form.
    return client.post(path, urlencode(data), content_type="application/x-www-form-urlencoded", headers=headers)


def rows() -> int:
    return ReceivedWebhook.objects.count()


# --- a good delivery ---------------------------------------------------------------------


def test_a_signed_delivery_is_handled_once_and_recorded(client, organization, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, params())
    assert response.status_code == 200 and response.content == b"<Response/>"
    assert Calls.handled == [(params()["CallSid"], organization.pk)]
    assert Calls.committed == [params()["CallSid"]]  # slow work runs on commit
    record = ReceivedWebhook.objects.get(provider="twilio")
    assert record.event_id == "idem-1" and record.organization_id == organization.pk


def test_a_duplicate_delivery_changes_nothing(client, django_capture_on_commit_callbacks):
    assert post(client, params()).status_code == 200
    before = rows()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post(client, params())
    assert response.status_code == 200 and response.content == b""
    assert len(Calls.handled) == 1 and not callbacks
    assert rows() == before


def test_without_twilios_idempotency_header_the_subclass_names_the_event(client):
    assert post(client, params(), idempotency="").status_code == 200
    assert ReceivedWebhook.objects.filter(provider="twilio", event_id=f"{'CA' + '2' * 32}:ringing").exists()
    assert post(client, params(), idempotency="").content == b""  # the same call status again: a duplicate
    assert post(client, params(CallStatus="in-progress"), idempotency="").status_code == 200
    assert len(Calls.handled) == 2


def test_a_delivery_without_any_event_id_is_handled_each_time(client):
    data = {"AccountSid": SID, "Body": "no call sid"}
    before = rows()
    for _ in range(2):
        assert post(client, data, idempotency="").status_code == 200
    assert len(Calls.handled) == 2
    assert rows() - before == 2  # only the handler's own writes: no dedupe record


@pytest.mark.parametrize("failure", ["raise", "503"])
def test_a_failed_handler_rolls_back_its_delivery_so_the_retry_is_processed(
    client, failure, django_capture_on_commit_callbacks
):
    client.raise_request_exception = False
    Calls.fail_next = failure
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, params())
    assert response.status_code in (500, 503)
    assert rows() == 0  # neither the dedupe record nor the handler's own write
    assert Calls.committed == []

    Calls.fail_next = None
    with django_capture_on_commit_callbacks(execute=True):
        retry = post(client, params())
    assert retry.status_code == 200 and retry.content == b"<Response/>"
    assert ReceivedWebhook.objects.filter(provider="twilio", event_id="idem-1").count() == 1
    assert Calls.committed == [params()["CallSid"]]


def test_a_value_the_columns_cannot_hold_is_a_400_that_rolls_back_the_delivery(client, refusals):
    Calls.fail_next = "too_long"
    response = post(client, params())
    assert response.status_code == 400 and response.content == b"Bad request: a value is too long or out of range."
    assert rows() == 0 and refusals == []


# --- malformed signed requests: 400, before the organization is looked up -------------------------------------


@pytest.mark.parametrize(
    "extra, named",
    [
        ({"AccountSid": "AC" + "1" * 33}, "AccountSid"),  # the platform's token signs it: a signed, malformed SID
        ({"CallStatus": "ringing\x00"}, "CallStatus"),
        ({"Body\x00": "text"}, "Body"),
    ],
)
def test_a_signed_request_with_a_malformed_value_is_a_400_that_reads_and_writes_nothing(
    client, refusals, extra, named
):
    with CaptureQueriesContext(connection) as queries:
        response = post(client, params(**extra))
    assert response.status_code == 400 and response["Content-Type"].startswith("text/plain")
    assert response.content.decode().startswith("Bad request: ") and named in response.content.decode()
    assert len(queries) == 0 and Calls.organization_lookups == [] and Calls.handled == []
    assert rows() == 0 and refusals == []  # the sender's bug: no refused signature is counted


class _Amounts(TwilioWebhookView):
    int_params = {"Duration": (0, 2**31 - 1)}
    decimal_params = {"Price": (10, 5)}


@pytest.mark.parametrize(
    "form, verdict",
    [
        ({"Duration": "0", "Price": "-99999.99999"}, None),
        ({"Duration": "", "Price": ""}, None),
        ({"Duration": str(2**31)}, "Duration must be between 0 and 2147483647."),
        ({"Duration": "-1"}, "Duration must be between 0 and 2147483647."),
        ({"Duration": "1.5"}, "Duration is not a whole number."),
        ({"Price": "100000"}, "Price is not an amount between -99999.99999 and 99999.99999."),
        ({"Price": "99999.999995"}, "Price is not an amount between -99999.99999 and 99999.99999."),
        ({"Price": "1e999999999"}, "Price is not an amount between -99999.99999 and 99999.99999."),
        ({"Price": "Infinity"}, "Price is not an amount between -99999.99999 and 99999.99999."),
        ({"Price": "free"}, "Price is not an amount between -99999.99999 and 99999.99999."),
    ],
)
def test_numbers_must_fit_the_columns_they_are_stored_in(rf, form, verdict):
    body = urlencode({"AccountSid": SID, **form})
    request = rf.post("/hooks/x/", body, content_type="application/x-www-form-urlencoded")
    assert _Amounts().malformed(request) == verdict


# --- the signature -------------------------------------------------------------------------


def _touches(queries, *tables) -> list[str]:
    return [q["sql"] for q in queries if any(t in q["sql"] for t in tables)]


@pytest.mark.parametrize(
    "case, signature, reason",
    [
        ("missing", "", "missing"),
        ("forged", "bm90IGEgc2lnbmF0dXJl", "invalid"),
        ("another token", None, "invalid"),
        ("another URL", None, "invalid"),
    ],
)
def test_a_bad_signature_is_refused_before_any_database_read(client, refusals, case, signature, reason):
    if case == "another token":
        signature = sign(PUBLIC + PATH, params(), token="someone-elses-token")
    if case == "another URL":
        signature = sign(PUBLIC + "/hooks/example/twilio/sms/?attempt=1", params())
    with CaptureQueriesContext(connection) as queries:
        response = post(client, params(), signature=signature)
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/plain")
    assert b"signature" in response.content and len(response.content) < 100
    assert Calls.organization_lookups == [] and Calls.handled == []
    assert not _touches(queries.captured_queries, "accounts_", "webhooks_")  # [!!] only the audit record
    assert rows() == 0
    (refusal,) = refusals
    assert refusal["provider"] == "twilio" and refusal["reason"] == reason
    assert refusal["path"] == "/hooks/example/twilio/voice/"
    assert refusal["request_id"] == response["X-Request-ID"]
    assert refusal["remote_addr"] == "127.0.0.1"  # the test client's


def test_a_signing_key_that_cannot_be_looked_up_answers_503_and_is_no_refusal(client, refusals, caplog):
    """The database holding the auth token is down: the provider retries later; nobody's budget is spent."""
    from compliance.models import AuditEvent

    Calls.key_store_down = True
    budget = 30  # RATE_LIMIT_WEBHOOK_REFUSALS: 30 refusals a minute, then 429 on every webhook route
    with caplog.at_level(logging.INFO, logger="jagcall.webhooks"):
        answers = [post(client, params(), idempotency=f"down-{n}") for n in range(budget + 5)]
    assert {response.status_code for response in answers} == {503}
    assert answers[0]["Retry-After"] == "5" and answers[0]["Content-Type"].startswith("text/plain")
    assert refusals == []  # neither audited nor counted as a refusal
    assert not AuditEvent.objects.platform().filter(action="webhook.signature_refused").exists()
    assert Calls.organization_lookups == [] and Calls.handled == [] and rows() == 0
    outcomes = [record.outcome for record in caplog.records if hasattr(record, "outcome")]
    assert outcomes == ["key_unavailable"] * (budget + 5)

    Calls.key_store_down = False  # back: the retry is accepted, the client's budget untouched
    assert post(client, params(), idempotency="down-0").status_code == 200
    forged = post(client, params(), signature="bm90IGEgc2lnbmF0dXJl", idempotency="forged")
    assert forged.status_code == 403 and refusals[0]["reason"] == "invalid"


def test_params_changed_after_signing_are_refused(client, refusals):
    signature = sign(PUBLIC + PATH, params())
    response = post(client, params(CallStatus="completed"), signature=signature)
    assert response.status_code == 403 and refusals[0]["reason"] == "invalid"


def test_without_an_auth_token_nothing_is_accepted(client, twilio, refusals):
    twilio.TWILIO_AUTH_TOKEN = ""
    assert post(client, params()).status_code == 403
    assert refusals[0]["reason"] == "invalid" and rows() == 0


def test_a_subclass_supplies_the_accounts_tokens_and_both_work_while_one_rotates(client, twilio):
    class RotatingHook(ExampleTwilioHook):
        def auth_tokens(self, request):
            return ["old-token", "new-token"]

    from django.test import RequestFactory

    view = RotatingHook.as_view()
    for n, token in enumerate(["old-token", "new-token"]):
        data = params()
        request = RequestFactory().post(
            "/hooks/example/twilio/voice/", data,
            headers={"X-Twilio-Signature": sign(PUBLIC + "/hooks/example/twilio/voice/", data, token),
                     "I-Twilio-Idempotency-Token": f"rot-{n}"},
        )
        assert view(request, kind="voice").status_code == 200
    request = RequestFactory().post(
        "/hooks/example/twilio/voice/", params(),
        headers={"X-Twilio-Signature": sign(PUBLIC + "/hooks/example/twilio/voice/", params(), TOKEN)},
    )
    assert view(request, kind="voice").status_code == 403  # the platform's token is not this account's


def test_a_json_body_is_checked_by_its_hash_in_the_signed_url(client):
    body = b'{"CallSid": "CA1", "StatusCallbackEvent": "participant-join"}'
    body_hash = hashlib.sha256(body).hexdigest()
    path = f"/hooks/example/twilio/events/?bodySHA256={body_hash}"
    signature = sign(PUBLIC + path, {})
    headers = {"X-Twilio-Signature": signature, "I-Twilio-Idempotency-Token": "json-1"}
    # No AccountSid in a form: the example knows no organization, but the signature passed.
    response = client.post(path, body, content_type="application/json", headers=headers)
    assert response.status_code == 404
    tampered = client.post(path, body.replace(b"CA1", b"CA2"), content_type="application/json", headers=headers)
    assert tampered.status_code == 403


# --- the URL Twilio signed -----------------------------------------------------------------


def test_behind_a_proxy_the_public_url_is_what_is_checked(client, twilio):
    twilio.PUBLIC_BASE_URL = PUBLIC + "/"  # a trailing slash is tolerated
    assert post(client, params(), url=PUBLIC + PATH).status_code == 200
    # The server's own idea of itself (http://testserver) is not what Twilio signed.
    assert post(client, params(), url="http://testserver" + PATH, idempotency="idem-2").status_code == 403


def test_without_public_base_url_the_requests_own_url_is_checked(client, twilio):
    del twilio.PUBLIC_BASE_URL
    assert post(client, params(), url="http://testserver" + PATH).status_code == 200
    assert post(client, params(), url=PUBLIC + PATH, idempotency="idem-2").status_code == 403


# --- organization, method, size --------------------------------------------------------------


def test_an_unknown_organization_is_404_unless_the_subclass_answers_otherwise(client):
    data = params(AccountSid="AC" + "9" * 32)
    response = post(client, data)
    assert response.status_code == 404 and response["Content-Type"].startswith("text/plain")
    spoken = post(client, data, path="/hooks/example/twilio-spoken/")
    assert spoken.status_code == 200 and b"<Say>" in spoken.content
    assert rows() == 0 and Calls.handled == []


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete", "head"])
def test_only_post_is_allowed(client, method):
    response = getattr(client, method)(PATH)
    assert response.status_code == 405
    assert response["Allow"] == "POST"


def test_a_body_over_the_limit_is_413_before_its_signature_is_read(client, twilio, refusals):
    twilio.WEBHOOK_MAX_BODY_BYTES = 512
    data = params(Padding="x" * 600)
    response = post(client, data)
    assert response.status_code == 413 and b"512 bytes" in response.content
    assert refusals == [] and Calls.handled == [] and rows() == 0
    assert post(client, params(Padding="x" * 100)).status_code == 200


def test_csrf_is_not_asked_of_a_provider(twilio):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    assert post(client, params()).status_code == 200


# --- the base is general: a raw-body HMAC scheme ------------------------------------------------


def test_a_raw_body_scheme_with_no_organization(client, refusals):
    body = b'{"id": "evt_1", "type": "invoice.paid"}'
    headers = {"X-Example-Signature": hmac_signature(body), "X-Example-Event": "evt_1"}
    response = client.post("/hooks/example/hmac/", body, content_type="application/json", headers=headers)
    assert response.status_code == 204
    assert ReceivedWebhook.objects.filter(provider="example", event_id="evt_1", organization_id=None).exists()
    again = client.post("/hooks/example/hmac/", body, content_type="application/json", headers=headers)
    assert again.status_code == 200 and len(Calls.handled) == 1
    forged = client.post("/hooks/example/hmac/", body + b" ", content_type="application/json", headers=headers)
    assert forged.status_code == 403 and refusals[0]["provider"] == "example"


# --- the contract cannot be bypassed -------------------------------------------------------------


@pytest.mark.parametrize("method", ["dispatch", "post", "as_view"])
def test_a_subclass_cannot_take_another_path(method):
    with pytest.raises(TypeError, match="overrides"):
        type("Shortcut", (TwilioWebhookView,), {method: lambda self, *a, **k: None})


def test_a_view_without_a_provider_cannot_be_mounted():
    with pytest.raises(TypeError, match="provider"):
        type("Nameless", (SignedWebhookView,), {}).as_view()


# --- one log line per request --------------------------------------------------------------------


def test_each_request_writes_one_structured_log_line(client, caplog):
    caplog.set_level(logging.INFO, logger="jagcall.webhooks")
    post(client, params())
    post(client, params())
    post(client, params(), signature="Zm9yZ2Vk")
    client.get(PATH)
    lines = [r for r in caplog.records if r.name == "jagcall.webhooks"]
    assert [(r.provider, r.outcome, r.status) for r in lines] == [
        ("twilio", "handled", 200),
        ("twilio", "duplicate", 200),
        ("twilio", "refused_invalid", 403),
        ("twilio", "method_not_allowed", 405),
    ]
    assert lines[0].event_id == "idem-1" and lines[2].event_id is None
    assert all(isinstance(r.duration_ms, float) and r.request_id != "-" for r in lines)
