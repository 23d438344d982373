"""C4: TOTP two-factor with recovery codes; secrets sealed; the back office and organizations can require it."""

from __future__ import annotations

import base64
import logging
import math
import time
from datetime import timedelta

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from accounts import services
from accounts.tests.factories import DEFAULT_PASSWORD, MembershipFactory, UserFactory, enable_totp
from jagcall.kernel.crypto import keys, sealed
from jagcall.kernel.crypto.models import PlatformKeyset

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
    assert raw.count("jcs2:") == 2 and "jcs1:" not in raw
    totp = Authenticator.objects.get(user=owner, type="totp")
    assert sealed.unseal(str(totp.data["secret"]), purpose="mfa", owner=f"user:{owner.pk}|totp|secret") == secret


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
    assert response.status_code == 302 and response["Location"] == f"/auth/2fa/totp/activate/?next=%2Fo%2F{organization.slug}%2F"
    enable_totp(member)
    # A factor exists now, but this session has not passed it: confirm it first.
    response = client.get(f"/o/{organization.slug}/")
    assert response.status_code == 302 and response["Location"] == f"/auth/2fa/reauthenticate/?next=%2Fo%2F{organization.slug}%2F"
    client.force_login(member)  # signed in again, with the password and the code
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
    PlatformKeyset.objects.update(rotated_at=timezone.now() - keys.retirement_grace() - timedelta(seconds=1))
    call_command("rotate_keys", "--retire-unused", stdout=open("/dev/null", "w"))
    keys.evict()
    assert keys.platform_keys("secrets").key_ids == (new_primary,)
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


# --- sealed secrets are bound to their row (owner) ------------------------------------------------


def raw_data(user, kind) -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT data FROM mfa_authenticator WHERE user_id = %s AND type = %s", [user.pk, kind])
        value = cursor.fetchone()[0]
    import json

    return json.loads(value) if isinstance(value, str) else value


def copy_sealed_value(*, kind, slot, source_user, target_user):
    """What someone with write access to the database could do: move one row's ciphertext onto another row."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE mfa_authenticator AS target SET data = jsonb_set(target.data::jsonb, %s, source.data::jsonb -> %s) "
            "FROM mfa_authenticator AS source WHERE source.user_id = %s AND source.type = %s "
            "AND target.user_id = %s AND target.type = %s",
            [[slot], slot, source_user.pk, kind, target_user.pk, kind],
        )
        assert cursor.rowcount == 1


def test_a_totp_secret_copied_onto_another_users_row_does_not_decrypt(client, owner, organization, caplog):
    victim_secret = enable_totp(owner)
    intruder = UserFactory(email="intruder@example.test")
    MembershipFactory(user=intruder, organization=organization)
    intruder_secret = enable_totp(intruder)
    copy_sealed_value(kind="totp", slot="secret", source_user=owner, target_user=intruder)
    assert raw_data(intruder, "totp")["secret"] == raw_data(owner, "totp")["secret"]

    caplog.set_level(logging.ERROR, logger="accounts.mfa")
    sign_in(client, intruder)
    for code in (code_at(victim_secret), code_at(intruder_secret)):
        response = second_factor(client, code)
        assert response.status_code == 200  # the form again: refused, not a server error
    assert client.get(f"/o/{organization.slug}/").status_code == 302  # not in
    assert any(
        "cannot be used" in r.getMessage() and f"user {intruder.pk}" in r.getMessage() and "does not decrypt" in r.getMessage()
        for r in caplog.records
    )
    # The original, on its own row, still works.
    client.post("/auth/logout/")
    sign_in(client, owner)
    assert second_factor(client, code_at(victim_secret, 1)).status_code == 302
    assert client.get(f"/o/{organization.slug}/").status_code == 200


def test_a_recovery_seed_copied_onto_another_users_row_does_not_decrypt(client, owner, organization):
    enable_totp(owner)
    victim_codes = RecoveryCodes.activate(owner).generate_codes()
    intruder = UserFactory(email="intruder@example.test")
    MembershipFactory(user=intruder, organization=organization)
    enable_totp(intruder)
    RecoveryCodes.activate(intruder)
    copy_sealed_value(kind="recovery_codes", slot="seed", source_user=owner, target_user=intruder)

    sign_in(client, intruder)
    assert second_factor(client, victim_codes[0]).status_code == 200
    assert client.get(f"/o/{organization.slug}/").status_code == 302
    assert RecoveryCodes(Authenticator.objects.get(user=intruder, type="recovery_codes")).get_unused_codes() == []
    # A seed moved onto the same person's TOTP row (another slot and type) does not decrypt either.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE mfa_authenticator SET data = jsonb_set(data::jsonb, '{secret}', %s::jsonb) WHERE user_id = %s AND type = 'totp'",
            [f'"{raw_data(owner, "recovery_codes")["seed"]}"', owner.pk],
        )
    assert Authenticator.objects.get(user=owner, type="totp").wrap().validate_code("123456") is False
    client.post("/auth/logout/")
    sign_in(client, owner)
    assert second_factor(client, victim_codes[0]).status_code == 302  # the recovery codes on their own row still work


def _seal_the_old_way(text: str) -> str:
    """A value as sealed before owners were bound: ``jcs1:``, associated data naming only the purpose."""
    from jagcall.kernel.crypto import services

    primitive = services.platform_keys_for_write("secrets").aead
    return "jcs1:" + base64.urlsafe_b64encode(primitive.encrypt(text.encode(), b"jagcall:sealed:v1|mfa")).decode()


def _set_raw_secret(user, value: str):
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE mfa_authenticator SET data = jsonb_set(data::jsonb, '{secret}', %s::jsonb) WHERE user_id = %s AND type = 'totp'",
            [f'"{value}"', user.pk],
        )


def test_secrets_sealed_before_owner_binding_keep_working_and_reencrypt_binds_them(client, owner, organization):
    secret = enable_totp(owner)
    _set_raw_secret(owner, _seal_the_old_way(secret))
    out = __import__("io").StringIO()
    call_command("rotate_keys", "--status", stdout=out)
    assert "1 sealed secret(s) are in the old format" in out.getvalue()

    sign_in(client, owner)
    assert second_factor(client, code_at(secret)).status_code == 302  # the old format still opens
    assert raw_data(owner, "totp")["secret"].startswith("jcs1:")  # a use saves last_used_at only
    call_command("reencrypt", stdout=open("/dev/null", "w"))
    assert raw_data(owner, "totp")["secret"].startswith("jcs2:")
    out = __import__("io").StringIO()
    call_command("rotate_keys", "--status", stdout=out)
    assert "old format" not in out.getvalue()
    client.post("/auth/logout/")
    sign_in(client, owner)
    assert second_factor(client, code_at(secret, 1)).status_code == 302


def test_a_secret_sealed_the_old_way_is_bound_on_the_next_save_of_its_row(owner):
    secret = enable_totp(owner)
    _set_raw_secret(owner, _seal_the_old_way(secret))
    authenticator = Authenticator.objects.get(user=owner, type="totp")
    authenticator.save()
    stored = raw_data(owner, "totp")["secret"]
    assert stored.startswith("jcs2:")
    assert sealed.unseal(stored, purpose="mfa", owner=f"user:{owner.pk}|totp|secret") == secret
    assert Authenticator.objects.get(user=owner, type="totp").wrap().validate_code(code_at(secret)) is True


def test_a_secret_in_clear_in_the_database_is_refused(owner):
    secret = enable_totp(owner)
    _set_raw_secret(owner, secret)  # written around the app
    assert Authenticator.objects.get(user=owner, type="totp").wrap().validate_code(code_at(secret)) is False
