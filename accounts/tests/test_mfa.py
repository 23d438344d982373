"""C4: TOTP two-factor with recovery codes; secrets sealed; the back office and organizations can require it."""

from __future__ import annotations

import math
import time

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.core import mail
from django.core.management import call_command
from django.db import connection

from accounts import services
from accounts.tests.factories import DEFAULT_PASSWORD, MembershipFactory, UserFactory, enable_totp
from jagcall.kernel.crypto import sealed

pytestmark = pytest.mark.django_db


def code_at(secret: str, steps_from_now: int = 0) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30 + steps_from_now))


def sign_in(client, user, password=DEFAULT_PASSWORD):
    response = client.post("/auth/login/", {"login": user.email, "password": password})
    assert response.status_code == 302
    return response["Location"]


def second_factor(client, code):
    return client.post("/auth/2fa/authenticate/", {"code": code})


def test_totp_secret_and_recovery_seed_are_sealed_at_rest(owner):
    secret = enable_totp(owner)
    RecoveryCodes.activate(owner)
    with connection.cursor() as cursor:
        cursor.execute("SELECT data::text FROM mfa_authenticator WHERE user_id = %s", [owner.pk])
        raw = " ".join(row[0] for row in cursor.fetchall())
    assert secret not in raw and secret.lower() not in raw
    assert raw.count("jcs1:") == 2
    totp = Authenticator.objects.get(user=owner, type="totp")
    assert sealed.unseal(totp.data["secret"], purpose="mfa") == secret


def test_sign_in_needs_the_second_factor_and_a_code_works_once(client, owner, organization, events):
    secret = enable_totp(owner)
    assert sign_in(client, owner) == "/auth/2fa/authenticate/"
    assert client.get(f"/o/{organization.slug}/").status_code == 302  # not in yet
    code = code_at(secret)
    assert second_factor(client, "000000" if code != "000000" else "111111").status_code == 200  # wrong code
    response = second_factor(client, code)
    assert response.status_code == 302
    assert client.get(f"/o/{organization.slug}/").status_code == 200
    assert any(e["event"] == "user.mfa_used" for e in events)

    client.post("/auth/logout/")
    sign_in(client, owner)
    assert second_factor(client, code).status_code == 200  # the same code again: refused
    assert client.get(f"/o/{organization.slug}/").status_code == 302


def test_codes_of_the_adjacent_steps_are_accepted_and_older_ones_refused(client, owner):
    secret = enable_totp(owner)
    sign_in(client, owner)
    assert second_factor(client, code_at(secret, -3)).status_code == 200
    assert second_factor(client, code_at(secret, -1)).status_code == 302


def test_a_used_code_stays_refused_for_its_whole_validity_window(owner):
    from django.core.cache import cache

    secret = enable_totp(owner)
    totp = Authenticator.objects.get(user=owner, type="totp").wrap()
    code = code_at(secret, 1)  # valid for up to three 30 s steps
    assert totp.validate_code(code) is True
    key = totp._get_used_cache_key(code)
    remaining = cache.ttl(key) if hasattr(cache, "ttl") else None
    if remaining is None:
        remaining = cache._cache.get_client(key).ttl(cache.make_and_validate_key(key))
    assert remaining > 60
    assert totp.validate_code(code) is False


def test_recovery_codes_have_112_bits_and_each_works_once(client, owner, organization, events):
    enable_totp(owner)
    codes = RecoveryCodes.activate(owner).generate_codes()
    assert len(codes) >= 10 and len(set(codes)) == len(codes)
    assert all(len(c) == 34 and c.isdigit() for c in codes)
    assert min(len(c) for c in codes) * math.log2(10) >= 112
    mail.outbox.clear()

    sign_in(client, owner)
    assert second_factor(client, codes[0]).status_code == 302
    assert client.get(f"/o/{organization.slug}/").status_code == 200
    assert any(e["event"] == "user.mfa_recovery_code_used" for e in events)
    assert any("recovery code" in m.body and owner.email in m.to for m in mail.outbox)

    client.post("/auth/logout/")
    sign_in(client, owner)
    assert second_factor(client, codes[0]).status_code == 200  # spent
    assert second_factor(client, codes[1]).status_code == 302


def test_without_the_device_or_a_recovery_code_there_is_no_way_in(client, owner, organization):
    enable_totp(owner)
    RecoveryCodes.activate(owner)
    sign_in(client, owner)
    for guess in ("123456", "0" * 34, "not a code"):
        assert second_factor(client, guess).status_code == 200
    assert client.get(f"/o/{organization.slug}/").status_code == 302


def test_password_reset_does_not_bypass_the_second_factor(client, owner, organization):
    import re

    enable_totp(owner)
    client.post("/auth/password/reset/", {"email": owner.email})
    link = re.search(r"https?://[^/\s]+(/auth/password/reset/key/\S+/)", mail.outbox[-1].body).group(1)
    page = client.get(link)
    client.post(page["Location"], {"password1": "a brand new passphrase", "password2": "a brand new passphrase"})
    assert client.get(f"/o/{organization.slug}/").status_code == 302  # reset does not sign in
    assert sign_in(client, owner, "a brand new passphrase") == "/auth/2fa/authenticate/"


@pytest.mark.django_db(transaction=True)  # the notification goes out on commit, inside the request
def test_enabling_totp_through_the_portal_emails_the_person(client, owner, events):
    sign_in(client, owner)
    response = client.get("/auth/2fa/totp/activate/")
    assert response.status_code == 302 and response["Location"].startswith("/auth/reauthenticate/")  # password again
    client.post(response["Location"], {"password": DEFAULT_PASSWORD})
    page = client.get("/auth/2fa/totp/activate/")
    assert page.status_code == 200 and b"svg" in page.content.lower()  # the QR code
    secret = page.context["form"].secret
    mail.outbox.clear()
    before = client.session.session_key
    response = client.post("/auth/2fa/totp/activate/", {"code": code_at(secret)})
    assert response.status_code == 302
    assert client.session.session_key != before  # a privilege change gets a new session id
    assert Authenticator.objects.filter(user=owner, type="totp").exists()
    assert any(owner.email in m.to for m in mail.outbox)
    assert any(e["event"] == "user.mfa_enabled" for e in events)


def test_an_organization_can_require_two_factor_of_its_members(client, organization, owner, member):
    with pytest.raises(Exception, match="for yourself first"):
        services.organization_require_two_factor(organization=organization, actor=owner, required=True)
    enable_totp(owner)
    services.organization_require_two_factor(organization=organization, actor=owner, required=True)
    client.force_login(member)
    response = client.get(f"/o/{organization.slug}/")
    assert response.status_code == 302 and response["Location"] == "/auth/2fa/totp/activate/"
    enable_totp(member)
    assert client.get(f"/o/{organization.slug}/").status_code == 200
    # Other organizations of the same person are not affected.
    other = MembershipFactory(user=UserFactory(), role="owner").organization
    MembershipFactory(organization=other, user=member)
    client.force_login(member)
    assert client.get(f"/o/{other.slug}/").status_code == 200


def test_owner_toggles_the_rule_from_settings(client, organization, owner, admin_user):
    enable_totp(owner)
    client.force_login(owner)
    response = client.post(f"/o/{organization.slug}/settings/security/", {"require_two_factor": "on"}, follow=True)
    assert "required for everyone" in response.content.decode()
    organization.refresh_from_db()
    assert organization.require_two_factor
    client.force_login(admin_user)
    assert client.post(f"/o/{organization.slug}/settings/security/", {}).status_code in (302, 403)


def test_sealed_secrets_follow_key_rotation(client, owner, organization):
    secret = enable_totp(owner)
    RecoveryCodes.activate(owner)
    old_primary = sealed.primary_key_id()
    call_command("rotate_keys", "--platform", stdout=open("/dev/null", "w"))
    call_command("reencrypt", stdout=open("/dev/null", "w"))
    new_primary = sealed.primary_key_id()
    assert new_primary != old_primary
    for authenticator in Authenticator.objects.filter(user=owner):
        values = [v for k, v in authenticator.data.items() if k in ("secret", "seed")]
        assert {sealed.sealed_key_id(v) for v in values} == {new_primary}
    call_command("rotate_keys", "--retire-unused", stdout=open("/dev/null", "w"))
    sign_in(client, owner)
    assert second_factor(client, code_at(secret)).status_code == 302


def test_disabling_totp_emails_the_person_and_is_recorded(client, owner, events):
    secret = enable_totp(owner)
    sign_in(client, owner)
    assert second_factor(client, code_at(secret)).status_code == 302
    response = client.get("/auth/2fa/totp/deactivate/")
    if response.status_code == 302 and "reauthenticate" in response["Location"]:
        client.post(response["Location"], {"password": DEFAULT_PASSWORD})
    mail.outbox.clear()
    response = client.post("/auth/2fa/totp/deactivate/")
    assert response.status_code == 302
    assert not Authenticator.objects.filter(user=owner, type="totp").exists()
    assert any(owner.email in m.to for m in mail.outbox)
    assert any(e["event"] == "user.mfa_disabled" for e in events)
