"""The auth tokens Twilio signs callbacks with, kept briefly in the process (twilio_accounts).

A token is read and decrypted once and kept AUTH_TOKEN_CACHE_SECONDS; replacing or disconnecting the
credential, or removing a subaccount, is effective at once in the process: a request signed with the old
token is refused (403) from the next request on. Unknown accounts are not kept.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from twilio.request_validator import RequestValidator

from accounts.models import Membership
from accounts.principals import Principal
from integrations import services as integrations
from jagcall.kernel.standins.twilio.records import Account, new_sid
from telephony.models import TwilioSubaccount
from telephony.services import twilio_accounts
from telephony.tests.calls_support import signature_refusals

pytestmark = pytest.mark.django_db

CALLER = "+14155550100"


@pytest.fixture
def twilio(twilio_standin, settings):
    settings.PUBLIC_BASE_URL = "https://app.jagcall.test"
    return twilio_standin


@pytest.fixture
def owner_principal(organization, owner):
    return Principal.member(Membership.objects.for_org(organization).get(user=owner))


def _voice_signed_with(client, token: str, params: dict):
    """A voice request signed with ``token`` as it is, whatever the account's token is now."""
    path = reverse("twilio-hooks:voice")
    signature = RequestValidator(token).compute_signature(settings.PUBLIC_BASE_URL + path, params)
    return client.post(path, urlencode(params), content_type="application/x-www-form-urlencoded",
                       headers={"X-Twilio-Signature": signature})  # fmt: skip


def _own_account(standin) -> tuple[str, str]:
    sid, token = new_sid("AC"), secrets.token_hex(16)
    standin.accounts[sid] = Account(sid, token, "Own Twilio", sid)
    return sid, token


def test_a_token_is_read_once_then_kept_for_a_bounded_time(twilio, organization, monkeypatch):
    sid = twilio_accounts.twilio_for(organization).account_sid
    twilio_accounts.auth_token_cache_clear()
    with CaptureQueriesContext(connection) as first:
        token = twilio_accounts.auth_token_for_account_sid(sid)
    with CaptureQueriesContext(connection) as second:
        assert twilio_accounts.auth_token_for_account_sid(sid) == token == twilio.accounts[sid].auth_token
    assert len(first.captured_queries) == 1 and len(second.captured_queries) == 0

    later = twilio_accounts.time.monotonic() + twilio_accounts.AUTH_TOKEN_CACHE_SECONDS + 1
    monkeypatch.setattr(twilio_accounts.time, "monotonic", lambda: later)
    with CaptureQueriesContext(connection) as expired:
        assert twilio_accounts.auth_token_for_account_sid(sid) == token
    # Read again once its time is up (the organization's keys, kept for a while too, may be read with it).
    assert any("telephony_twiliosubaccount" in q["sql"] for q in expired.captured_queries)


def test_unknown_accounts_are_not_kept(twilio, organization):
    twilio_accounts.auth_token_cache_clear()
    for _ in range(5):
        assert twilio_accounts.auth_token_for_account_sid(new_sid("AC")) is None
    assert twilio_accounts._token_cache == {}


def test_a_replaced_then_disconnected_own_account_stops_validating_at_once(twilio, organization, owner_principal,
                                                                            client):  # fmt: skip
    sid, old_token = _own_account(twilio)
    integrations.credential_save(organization=organization, actor=owner_principal, provider="twilio",
                                 values={"account_sid": sid, "auth_token": old_token})  # fmt: skip
    params = {"AccountSid": sid, "CallSid": "CA" + "1" * 32, "From": CALLER, "To": "+14155550999"}
    # Signed with the account's token: accepted (no number of ours there: the caller hears it is not in service).
    assert _voice_signed_with(client, old_token, params).status_code == 200
    assert twilio_accounts._token_cache[sid][1] == old_token

    new_token = secrets.token_hex(16)
    twilio.accounts[sid] = Account(sid, new_token, "Own Twilio", sid)  # rotated at Twilio
    integrations.credential_save(organization=organization, actor=owner_principal, provider="twilio",
                                 values={"account_sid": sid, "auth_token": new_token})  # fmt: skip
    with signature_refusals() as refusals:
        assert _voice_signed_with(client, old_token, params).status_code == 403
    assert len(refusals) == 1
    assert _voice_signed_with(client, new_token, params).status_code == 200

    integrations.credential_delete(organization=organization, actor=owner_principal, provider="twilio")
    assert twilio_accounts.auth_token_for_account_sid(sid) is None
    assert _voice_signed_with(client, new_token, params).status_code == 403


def test_a_removed_subaccount_stops_validating_at_once(twilio, organization, client):
    sid = twilio_accounts.twilio_for(organization).account_sid
    token = twilio.accounts[sid].auth_token
    params = {"AccountSid": sid, "CallSid": "CA" + "2" * 32, "From": CALLER, "To": "+14155550999"}
    assert _voice_signed_with(client, token, params).status_code == 200
    TwilioSubaccount.objects.for_org(organization).get().delete()
    assert _voice_signed_with(client, token, params).status_code == 403


def test_a_change_made_by_another_process_is_seen_at_the_next_lookup(twilio, organization):
    """Another web process changed the token: its commit moved the shared generation, so this process reads again."""
    sid = twilio_accounts.twilio_for(organization).account_sid
    twilio_accounts.auth_token_cache_clear()
    old = twilio_accounts.auth_token_for_account_sid(sid)
    assert twilio_accounts._token_cache[sid][1] == old
    # What the other process did: the row changed and, on its commit, the generation moved. Its signals ran there,
    # not here: this process's cache is put back as it was before the save.
    kept = dict(twilio_accounts._token_cache)
    subaccount = TwilioSubaccount.objects.for_org(organization).get()
    subaccount.auth_token = "replaced-in-another-process"
    subaccount.save(update_fields=["auth_token"])
    twilio_accounts._token_cache.update(kept)
    assert twilio_accounts.auth_token_for_account_sid(sid) == old  # nothing said yet: still the kept one
    twilio_accounts._shared_generation_move()
    assert twilio_accounts.auth_token_for_account_sid(sid) == "replaced-in-another-process"


def test_changes_move_the_shared_generation_on_commit(twilio, organization, owner_principal, django_capture_on_commit_callbacks):
    before = twilio_accounts._shared_generation()
    with django_capture_on_commit_callbacks(execute=True):
        own_sid, own_token = _own_account(twilio)
        integrations.credential_save(organization=organization, actor=owner_principal, provider="twilio",
                                     values={"account_sid": own_sid, "auth_token": own_token})  # fmt: skip
    assert int(twilio_accounts._shared_generation()) > int(before)


def test_without_redis_nothing_is_kept_and_every_lookup_reads_the_database(twilio, organization, settings):
    sid = twilio_accounts.twilio_for(organization).account_sid
    twilio_accounts.auth_token_cache_clear()
    settings.REDIS_CACHE_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    with CaptureQueriesContext(connection) as reads:
        first = twilio_accounts.auth_token_for_account_sid(sid)
        assert twilio_accounts.auth_token_for_account_sid(sid) == first == twilio.accounts[sid].auth_token
    assert twilio_accounts._token_cache == {}
    assert sum("telephony_twiliosubaccount" in q["sql"] for q in reads.captured_queries) == 2
