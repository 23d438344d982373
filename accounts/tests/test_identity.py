"""Registration with Turnstile, sign-in protection, email verification, password reset (C26, C27)."""

from __future__ import annotations

import re
import time

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.core.cache import cache
from django.urls import reverse

from accounts.models import Membership, Organization, User
from accounts.permissions import Role
from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

SIGNUP = "/auth/signup/"
STRONG = "harbour lantern nineteen"


def signup_data(token=None, **extra):
    data = {
        "organization_name": "Bright Smiles Dental",
        "email": "ana@brightsmiles.test",
        "password1": STRONG,
        "password2": STRONG,
        **extra,
    }
    if token is not None:
        data["cf-turnstile-response"] = token
    return data


def link_in(message, pattern) -> str:
    return re.search(rf"https?://[^/\s]+({pattern})", message.body).group(1)


# --- registration ------------------------------------------------------------------------


def test_registration_makes_the_user_owner_of_a_new_organization(client, turnstile, events):
    token = turnstile.issue_token(action="signup")
    response = client.post(SIGNUP, signup_data(token), REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT="Firefox/140")
    assert response.status_code == 302
    user = User.objects.get(email="ana@brightsmiles.test")
    organization = Organization.objects.get(name="Bright Smiles Dental")
    assert Membership.objects.for_org(organization).get(user=user).role == Role.OWNER
    assert turnstile.siteverify_requests[-1].form["response"] == token
    assert turnstile.siteverify_requests[-1].form["remoteip"] == "203.0.113.7"
    # Verification email sent, address not verified yet.
    assert not EmailAddress.objects.get(user=user).verified
    assert any("/auth/confirm-email/" in m.body for m in mail.outbox)
    registered = [e for e in events if e["event"] == "user.registered"]
    assert registered and registered[0]["ip"] == "203.0.113.7" and registered[0]["user_agent"] == "Firefox/140"


@pytest.mark.parametrize("case", ["missing", "unknown", "wrong_action", "replayed"])
def test_registration_without_a_valid_turnstile_token_is_refused(client, turnstile, case):
    if case == "missing":
        data = signup_data()
    elif case == "unknown":
        data = signup_data("made-up-token")
    elif case == "wrong_action":
        data = signup_data(turnstile.issue_token(action="login"))
    else:
        token = turnstile.issue_token(action="signup")
        client.post(SIGNUP, signup_data(token, email="first@brightsmiles.test", organization_name="First"))
        client.logout()
        data = signup_data(token)
    response = client.post(SIGNUP, data)
    assert response.status_code == 200
    assert "anti-robot check" in response.content.decode()
    assert not User.objects.filter(email="ana@brightsmiles.test").exists()
    assert not Organization.objects.filter(name="Bright Smiles Dental").exists()


def test_registration_fails_closed_when_turnstile_is_down(client, turnstile, settings):
    settings.TURNSTILE_TIMEOUT_SECONDS = 1
    turnstile.mode = "error500"
    response = client.post(SIGNUP, signup_data(turnstile.issue_token(action="signup")))
    assert response.status_code == 200 and "anti-robot check" in response.content.decode()
    assert not User.objects.exists()


def test_without_keys_in_development_the_widget_is_off_and_the_page_says_so(client, settings):
    settings.TURNSTILE_ENABLED = False
    page = client.get(SIGNUP).content.decode()
    assert "anti-robot check is off" in page and "cf-turnstile" not in page
    assert client.post(SIGNUP, signup_data()).status_code == 302


def test_signup_page_loads_the_widget_when_enabled(client, turnstile):
    page = client.get(SIGNUP).content.decode()
    assert f'data-sitekey="{turnstile.site_key}"' in page and turnstile.script_url in page


@pytest.mark.parametrize("password", ["short-1234", "password1234", "123456789012"])
def test_weak_passwords_are_refused(client, turnstile, password):
    response = client.post(SIGNUP, signup_data(turnstile.issue_token(), password1=password, password2=password))
    assert response.status_code == 200
    assert not User.objects.exists()


def test_registering_a_taken_email_does_not_reveal_the_account(client, turnstile):
    UserFactory(email="ana@brightsmiles.test")
    response = client.post(SIGNUP, signup_data(turnstile.issue_token()))
    fresh = client.post(SIGNUP, signup_data(turnstile.issue_token(), email="new@brightsmiles.test"))
    assert response.status_code == fresh.status_code == 302
    assert response["Location"] == fresh["Location"]
    assert User.objects.filter(email="ana@brightsmiles.test").count() == 1


# --- email verification gates what sends messages --------------------------------------


def test_a_new_account_signs_in_only_after_verifying_its_email(client, turnstile):
    client.post(SIGNUP, signup_data(turnstile.issue_token()))
    organization = Organization.objects.get(name="Bright Smiles Dental")
    assert client.get(f"/o/{organization.slug}/").status_code == 302  # not signed in yet
    response = client.post("/auth/login/", {"login": "ana@brightsmiles.test", "password": STRONG})
    assert response.status_code == 302 and "/auth/confirm-email/" in response["Location"]
    assert client.get(f"/o/{organization.slug}/").status_code == 302

    confirm = link_in(next(m for m in mail.outbox if "confirm-email" in m.body), r"/auth/confirm-email/[^\s]+/")
    client.post(confirm)
    assert EmailAddress.objects.get(email="ana@brightsmiles.test").verified
    client.post("/auth/login/", {"login": "ana@brightsmiles.test", "password": STRONG})
    assert client.get(f"/o/{organization.slug}/").status_code == 200
    invite = reverse("accounts:invitation-create", kwargs={"org_slug": organization.slug})
    assert client.post(invite, {"email": "hygienist@brightsmiles.test", "role": "member"}).status_code == 302


def test_an_unverified_account_cannot_send_invitations(client, organization):
    unverified = UserFactory(email="new.owner@acme.test", email_verified=False)
    from accounts.tests.factories import MembershipFactory

    MembershipFactory(organization=organization, user=unverified, role=Role.OWNER)
    client.force_login(unverified)
    invite = reverse("accounts:invitation-create", kwargs={"org_slug": organization.slug})
    response = client.post(invite, {"email": "hygienist@acme.test", "role": "member"})
    assert response.status_code == 400 and "Verify your email address first" in response.content.decode()
    assert not organization.invitations.exists()
    assert len(mail.outbox) == 0


# --- signing in -------------------------------------------------------------------------


def login(client, email, password, ip="198.51.100.4"):
    return client.post("/auth/login/", {"login": email, "password": password}, REMOTE_ADDR=ip)


def test_failed_logins_are_throttled_per_account_with_a_clear_message(client, owner, events):
    for _ in range(5):
        assert login(client, owner.email, "wrong password").status_code == 200
    response = login(client, owner.email, DEFAULT_PASSWORD)  # even the right password now waits
    assert response.status_code in (200, 429)
    assert "Too many failed login attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session
    failed = [e for e in events if e["event"] == "user.login_failed"]
    assert len(failed) >= 5 and failed[0]["email"] == owner.email and failed[0]["ip"] == "198.51.100.4"


def test_failed_logins_are_throttled_per_ip(client, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "login_failed": "3/m/ip,100/m/key"}
    users = [UserFactory() for _ in range(4)]
    for user in users[:3]:
        login(client, user.email, "wrong password", ip="192.0.2.50")
    response = login(client, users[3].email, DEFAULT_PASSWORD, ip="192.0.2.50")
    assert "Too many failed login attempts" in response.content.decode()
    assert login(client, users[3].email, DEFAULT_PASSWORD, ip="192.0.2.51").status_code == 302


def test_login_errors_do_not_reveal_whether_an_account_exists(client, owner):
    wrong_password = login(client, owner.email, "wrong password").content.decode()
    unknown = login(client, "nobody@nowhere.test", "wrong password").content.decode()
    strip = lambda html: re.sub(r'value="[^"]*"|name="csrfmiddlewaretoken"[^>]*', "", html)  # noqa: E731
    assert "not correct" in wrong_password
    assert strip(wrong_password).replace(owner.email, "X") == strip(unknown).replace("nobody@nowhere.test", "X")


def test_logout_ends_the_server_side_session(client, owner, events):
    login(client, owner.email, DEFAULT_PASSWORD)
    session_key = client.session.session_key
    assert cache.get(f"django.contrib.sessions.cache{session_key}") is not None
    client.post("/auth/logout/")
    assert cache.get(f"django.contrib.sessions.cache{session_key}") is None
    assert any(e["event"] == "user.logout" for e in events)


# --- password reset ---------------------------------------------------------------------------


def request_reset(client, email):
    return client.post("/auth/password/reset/", {"email": email})


def reset_link(email) -> str:
    message = [m for m in mail.outbox if email in m.to][-1]
    return link_in(message, r"/auth/password/reset/key/[^\s]+/")


def set_password(client, link, password):
    page = client.get(link)
    assert page.status_code == 302  # the key moves into the session, off the URL
    return client.post(page["Location"], {"password1": password, "password2": password})


def test_reset_link_works_once(client, owner, events):
    request_reset(client, owner.email)
    link = reset_link(owner.email)
    response = set_password(client, link, "a brand new passphrase")
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.check_password("a brand new passphrase")
    again = client.get(link, follow=True)
    assert "invalid" in again.content.decode().lower()
    kinds = [e["event"] for e in events]
    assert "user.password_reset_requested" in kinds and "user.password_reset_completed" in kinds


def test_reset_link_stops_working_after_its_lifetime(client, owner, settings):
    settings.PASSWORD_RESET_TIMEOUT = 1
    request_reset(client, owner.email)
    link = reset_link(owner.email)
    time.sleep(2.1)
    page = client.get(link, follow=True)
    assert "invalid" in page.content.decode().lower()
    owner.refresh_from_db()
    assert owner.check_password(DEFAULT_PASSWORD)


def test_reset_link_dies_when_the_password_changes_otherwise(client, owner):
    request_reset(client, owner.email)
    link = reset_link(owner.email)
    owner.set_password("changed some other way")
    owner.save()
    page = client.get(link, follow=True)
    assert "invalid" in page.content.decode().lower()


def test_reset_request_does_not_reveal_whether_an_account_exists(client, owner):
    known = request_reset(client, owner.email)
    unknown = request_reset(client, "nobody@nowhere.test")
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"]


def test_production_reset_tokens_live_one_hour():
    from django.conf import settings

    assert settings.PASSWORD_RESET_TIMEOUT == 3600


@pytest.mark.parametrize(
    "path", ["/auth/email/", "/auth/password/change/", "/auth/sessions/", "/auth/password/reset/", "/auth/signup/"]
)
def test_account_pages_render_in_the_portal(client, owner, path):
    if path != "/auth/signup/":
        login(client, owner.email, DEFAULT_PASSWORD)
    response = client.get(path, follow=True)
    assert response.status_code == 200
    assert "JagCall" in response.content.decode()


def test_the_sessions_page_lists_this_device_and_can_end_the_others(owner, events):
    from django.test import Client

    laptop = Client(HTTP_USER_AGENT="Laptop/1.0", REMOTE_ADDR="198.51.100.10")
    phone = Client(HTTP_USER_AGENT="Phone/2.0", REMOTE_ADDR="198.51.100.20")
    login(laptop, owner.email, DEFAULT_PASSWORD, ip="198.51.100.10")
    login(phone, owner.email, DEFAULT_PASSWORD, ip="198.51.100.20")
    assert phone.get("/o/acme-dental/").status_code == 200
    page = laptop.get("/auth/sessions/").content.decode()
    assert "198.51.100.10" in page and "198.51.100.20" in page
    assert "Laptop/1.0" in page and "Phone/2.0" in page
    laptop.post("/auth/sessions/", {"action": "end"})  # "sign out everywhere else"
    assert phone.get("/o/acme-dental/").status_code == 302  # the other session is gone, server-side
    assert laptop.get("/o/acme-dental/").status_code == 200
    revoked = [e for e in events if e["event"] == "user.session_revoked"]
    assert len(revoked) == 1 and revoked[0]["session_ip"] == "198.51.100.20" and revoked[0]["ip"] == "198.51.100.10"


# --- sessions ----------------------------------------------------------------------------


def test_session_id_changes_at_sign_in(client, owner):
    client.get("/auth/login/")
    before = client.session.session_key or client.cookies.get(settings_session_cookie())
    login(client, owner.email, DEFAULT_PASSWORD)
    assert client.session.session_key != before


def settings_session_cookie():
    from django.conf import settings

    return settings.SESSION_COOKIE_NAME


def test_sessions_live_in_redis(client, owner):
    login(client, owner.email, DEFAULT_PASSWORD)
    from django.conf import settings

    assert settings.SESSION_ENGINE == "django.contrib.sessions.backends.cache"
    assert "redis" in settings.CACHES[settings.SESSION_CACHE_ALIAS]["BACKEND"].lower()
    key = client.session.session_key
    client_redis = cache._cache.get_client(key)
    assert any(key in k.decode() for k in client_redis.keys("*sessions*"))


def test_disabling_a_person_ends_every_session_at_once(owner, organization, django_capture_on_commit_callbacks):
    from django.test import Client

    from accounts import services

    laptop, phone = Client(), Client()
    login(laptop, owner.email, DEFAULT_PASSWORD)
    login(phone, owner.email, DEFAULT_PASSWORD)
    keys = [laptop.session.session_key, phone.session.session_key]
    with django_capture_on_commit_callbacks(execute=True):
        services.user_disable(user=owner)
    for key in keys:
        assert cache.get(f"django.contrib.sessions.cache{key}") is None
    assert laptop.get(f"/o/{organization.slug}/").status_code == 302
    fresh = Client()
    response = login(fresh, owner.email, DEFAULT_PASSWORD)
    assert "_auth_user_id" not in fresh.session  # no new sign-in either
    assert response.status_code == 200 or response["Location"].startswith("/auth/inactive/")


def test_idle_and_absolute_timeouts_sign_out(client, owner, organization, settings, events):
    settings.SESSION_IDLE_TIMEOUT = 60
    login(client, owner.email, DEFAULT_PASSWORD)
    assert client.get(f"/o/{organization.slug}/").status_code == 200
    session = client.session
    session["_jc_seen_at"] -= 61
    session.save()
    response = client.get(f"/o/{organization.slug}/")
    assert response.status_code == 302 and response["Location"].startswith("/auth/login/")
    assert any(e["event"] == "user.session_expired" for e in events)

    settings.SESSION_IDLE_TIMEOUT = 3600
    settings.SESSION_ABSOLUTE_TIMEOUT = 600
    login(client, owner.email, DEFAULT_PASSWORD)
    session = client.session
    session["_jc_auth_at"] -= 601
    session["_jc_seen_at"] -= 1
    session.save()
    assert client.get(f"/o/{organization.slug}/").status_code == 302


def test_a_password_reset_ends_the_sessions_opened_before_it(client, owner, organization):
    from django.test import Client

    other_device = Client()
    login(other_device, owner.email, DEFAULT_PASSWORD)
    assert other_device.get(f"/o/{organization.slug}/").status_code == 200
    request_reset(client, owner.email)
    set_password(client, reset_link(owner.email), "a brand new passphrase")
    assert other_device.get(f"/o/{organization.slug}/").status_code == 302
