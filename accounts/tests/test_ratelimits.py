"""Limits on every unauthenticated endpoint (accounts/ratelimits.py), counted in the real Redis cache:
per client network (IPv4 address, IPv6 /64) and per target (account, organization, OAuth client)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from django.test import Client, RequestFactory
from django.urls import NoReverseMatch, reverse

from accounts import ratelimits
from accounts.models import Membership
from accounts.ratelimits import SENSITIVE_ROUTES, Limit, client_network, rate_limited, register_route
from accounts.services import invitation_create
from accounts.tests.factories import UserFactory, enable_totp

pytestmark = pytest.mark.django_db


@pytest.fixture
def tight(settings, monkeypatch):
    settings.SENSITIVE_RATE_LIMITS = {"default": "3/m", "accounts:invitation-accept": "2/m"}
    # The limits count in fixed windows: hold the clock still so a test never straddles two of them.
    import django_ratelimit.core

    now = time.time()
    monkeypatch.setattr(django_ratelimit.core, "time", SimpleNamespace(time=lambda: now))
    return settings


def test_at_the_turn_of_a_window_retry_after_is_still_given(settings, monkeypatch):
    import django_ratelimit.core

    settings.SENSITIVE_RATE_LIMITS = {"default": "1/m", "accounts:invitation-accept": "1/m"}
    window_end = django_ratelimit.core._get_window("203.0.113.30", 60)
    # Each check reads the clock twice (its window, then the time left): the refused request's
    # two readings fall either side of the window's end, so the time left rounds to 0.
    readings = iter([window_end - 0.001] * 3 + [float(window_end)])
    monkeypatch.setattr(django_ratelimit.core, "time", SimpleNamespace(time=lambda: next(readings, window_end)))
    client = from_ip("203.0.113.30")
    client.get("/invitations/guess-1/")
    refused = client.get("/invitations/guess-2/")
    assert refused.status_code == 429 and refused["Retry-After"] == "1"


def from_ip(ip: str) -> Client:
    return Client(REMOTE_ADDR=ip)


def test_every_route_in_the_table_exists():
    for name in SENSITIVE_ROUTES:
        try:
            reverse(name)
        except NoReverseMatch as e:
            # Routes with a key in the URL need their kwargs; the name itself must be known.
            assert "with no arguments not found" in str(e) or "arguments '()'" in str(e), f"{name}: {e}"


def test_the_defaults_are_tighter_for_codes_and_keys(settings):
    limits = settings.SENSITIVE_RATE_LIMITS
    assert limits["default"] == "30/m"
    assert limits["mfa_authenticate"] == "10/m"
    assert limits["accounts:invitation-accept"] == "20/m"


def test_guessing_invitation_links_is_stopped_per_ip(tight):
    guesser = from_ip("203.0.113.7")
    statuses = [guesser.get(f"/invitations/guess-{n}/").status_code for n in range(3)]
    assert statuses == [404, 404, 429]
    refused = guesser.get("/invitations/guess-9/")
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert b"Too many attempts" in refused.content and b"Wait" in refused.content
    # Someone else, elsewhere, is not held back.
    assert from_ip("198.51.100.20").get("/invitations/guess-1/").status_code == 404


def test_a_limited_request_changes_nothing(tight, organization, owner):
    invitation, token = invitation_create(organization=organization, actor=owner, email="new@example.test")
    person = UserFactory(email="new@example.test")
    client = from_ip("203.0.113.8")
    client.force_login(person)
    for n in range(2):
        client.get(f"/invitations/wrong-{n}/")
    response = client.post(f"/invitations/{token}/")
    assert response.status_code == 429
    assert not Membership.objects.unscoped("test: inspects rows directly").filter(organization=organization, user=person).exists()
    invitation.refresh_from_db()
    assert invitation.accepted_at is None


def test_sign_in_posts_are_limited_per_ip(tight, owner):
    client = from_ip("203.0.113.9")
    statuses = [
        client.post("/auth/login/", {"login": owner.email, "password": "not the password"}).status_code
        for _ in range(4)
    ]
    assert statuses[:3] == [200, 200, 200]
    assert statuses[3] == 429
    # Reading the page is not counted: the form still shows.
    assert client.get("/auth/login/").status_code == 200


def test_registration_and_reset_are_limited(tight):
    client = from_ip("203.0.113.10")
    for _ in range(3):
        client.post("/auth/password/reset/", {"email": "someone@example.test"})
    assert client.post("/auth/password/reset/", {"email": "someone@example.test"}).status_code == 429
    for _ in range(3):
        client.post("/auth/signup/", {})
    assert client.post("/auth/signup/", {}).status_code == 429


def test_the_api_token_endpoint_answers_in_the_error_shape(tight, owner, organization):
    client = from_ip("203.0.113.11")
    body = {"email": owner.email, "password": "wrong", "organization": organization.slug}
    for _ in range(3):
        client.post("/api/v1/auth/token", body, content_type="application/json")
    response = client.post("/api/v1/auth/token", body, content_type="application/json")
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "throttled" and "Wait" in error["message"]
    assert int(response["Retry-After"]) >= 1


def test_exceeding_a_limit_is_a_security_event(tight, events):
    client = from_ip("203.0.113.12")
    for n in range(3):
        client.get(f"/invitations/guess-{n}/")
    exceeded = [e for e in events if e["event"] == "rate_limit.exceeded"]
    assert exceeded and exceeded[0]["route"] == "accounts:invitation-accept" and exceeded[0]["ip"] == "203.0.113.12"


def test_second_factor_codes_get_the_tighter_default_limit(owner, monkeypatch):
    import django_ratelimit.core

    now = time.time()
    monkeypatch.setattr(django_ratelimit.core, "time", SimpleNamespace(time=lambda: now))
    client = from_ip("203.0.113.40")
    statuses = [client.post("/auth/2fa/authenticate/", {"code": "000000"}).status_code for _ in range(11)]
    assert 429 not in statuses[:10]
    assert statuses[10] == 429
    assert client.post("/auth/login/", {"login": owner.email, "password": "wrong"}).status_code == 200  # other pages: own count


# --- every unauthenticated endpoint, per client network and per target ---------------------

# Each unauthenticated endpoint: (route name, method, path, form data or JSON body).
ENDPOINTS = [
    ("account_login", "post", "/auth/login/", {"login": "someone@example.test", "password": "wrong"}),
    ("account_signup", "post", "/auth/signup/", {"email": "someone@example.test"}),
    ("account_reset_password", "post", "/auth/password/reset/", {"email": "someone@example.test"}),
    ("account_reset_password_from_key", "get", "/auth/password/reset/key/1a-guess/", None),
    ("account_confirm_email", "get", "/auth/confirm-email/guess/", None),
    ("mfa_authenticate", "post", "/auth/2fa/authenticate/", {"code": "000000"}),
    ("account_confirm_login_code", "post", "/auth/login/code/confirm/", {"code": "ABCDEF"}),
    ("accounts:invitation-accept", "get", "/invitations/guess/", None),
    ("sso:login", "get", "/sso/acme-dental/login/", None),
    ("sso:acs", "post", "/sso/acme-dental/acs/", {"SAMLResponse": "bm90IGEgcmVzcG9uc2U="}),
    ("api:token-obtain", "json", "/api/v1/auth/token", {"email": "someone@example.test", "password": "x", "organization": "acme"}),
    ("api:token-refresh", "json", "/api/v1/auth/token/refresh", {"refresh": "not.a.token"}),
    ("api:token-revoke", "json", "/api/v1/auth/token/revoke", {"refresh": "not.a.token"}),
    ("oauth:token", "post", "/oauth/token", {"grant_type": "authorization_code", "client_id": "guess", "code": "x"}),
    ("oauth:revoke-token", "post", "/oauth/revoke_token", {"client_id": "guess", "token": "x"}),
]


def _send(client: Client, method: str, path: str, data, **extra):
    if method == "json":
        return client.post(path, data, content_type="application/json", **extra)
    return getattr(client, method)(path, data or {}, **extra)


def test_every_unauthenticated_endpoint_is_in_the_table():
    for name, method, path, _data in ENDPOINTS:
        assert name in SENSITIVE_ROUTES, name
        assert ("POST" if method == "json" else method.upper()) in SENSITIVE_ROUTES[name].methods
    for name, limit in SENSITIVE_ROUTES.items():
        assert limit.budget is None or limit.budget in ratelimits.settings.SENSITIVE_TARGET_RATE_LIMITS, name


@pytest.mark.parametrize("name,method,path,data", ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_a_flood_on_each_endpoint_gets_429_with_retry_after(tight, name, method, path, data):
    tight.SENSITIVE_RATE_LIMITS = {"default": "3/m"}
    tight.ACCOUNT_RATE_LIMITS = False  # allauth's own limits off: this table alone answers here
    client = from_ip("203.0.113.50")
    statuses = [_send(client, method, path, data).status_code for _ in range(3)]
    assert 429 not in statuses and 500 not in statuses, statuses
    refused = _send(client, method, path, data)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    if path.startswith("/api/"):
        assert refused.json()["error"]["code"] == "throttled"
    elif path.startswith("/oauth/"):
        body = refused.json()  # OAuth's own error shape, which OAuth clients parse
        assert body["error"] == "slow_down" and "Wait" in body["error_description"]
    else:
        assert b"Too many attempts" in refused.content
    # Another address is not held back.
    assert _send(from_ip("198.51.100.50"), method, path, data).status_code != 429


def test_ipv6_addresses_are_counted_by_their_64(tight):
    login = {"login": "someone@example.test", "password": "wrong"}
    for address in ("2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff:ffff:ffff:ffff"):
        assert from_ip(address).post("/auth/login/", login).status_code == 200
    # A fourth address in the same /64 shares the budget...
    assert from_ip("2001:db8:1:2:abcd::9").post("/auth/login/", login).status_code == 429
    # ...one in the neighbouring /64 does not, and neither does an IPv4 address.
    assert from_ip("2001:db8:1:3::1").post("/auth/login/", login).status_code == 200
    assert from_ip("203.0.113.51").post("/auth/login/", login).status_code == 200


def test_client_networks():
    def network(ip):
        return client_network(RequestFactory().get("/", REMOTE_ADDR=ip))

    assert network("203.0.113.7") == "203.0.113.7"
    assert network("203.0.113.8") != network("203.0.113.7")  # IPv4: each address on its own
    assert network("2001:db8:0:1:aaaa::1") == network("2001:db8:0:1:bbbb::2") == "2001:db8:0:1::/64"
    assert network("2001:db8:0:2::1") == "2001:db8:0:2::/64"
    assert network("::ffff:203.0.113.7") == "203.0.113.7"  # an IPv4 client seen through IPv6
    assert network("not an address") == "unknown"


@pytest.fixture
def per_target(tight):
    tight.SENSITIVE_RATE_LIMITS = {"default": "100/m"}  # the client limit out of the way
    tight.SENSITIVE_TARGET_RATE_LIMITS = {**tight.SENSITIVE_TARGET_RATE_LIMITS, **{
        budget: "3/5m" for budget in tight.SENSITIVE_TARGET_RATE_LIMITS
    }}
    return tight


def test_the_per_account_sign_in_limit_holds_across_many_addresses(per_target, owner, organization, events):
    statuses = [
        from_ip(f"198.51.100.{n}").post("/auth/login/", {"login": owner.email, "password": "wrong"}).status_code
        for n in range(1, 4)
    ]
    assert statuses == [200, 200, 200]
    # A fourth address, the same account (however its email is typed): refused.
    refused = from_ip("198.51.100.4").post("/auth/login/", {"login": "  OWNER@acme.TEST ", "password": "wrong"})
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    # The API's token endpoint guesses the same password: same budget.
    api = from_ip("198.51.100.5").post(
        "/api/v1/auth/token", {"email": owner.email, "password": "wrong", "organization": organization.slug},
        content_type="application/json",
    )
    assert api.status_code == 429 and api.json()["error"]["code"] == "throttled"
    # Another account, from the same addresses: its own budget.
    assert from_ip("198.51.100.4").post("/auth/login/", {"login": "other@acme.test", "password": "x"}).status_code == 200
    exceeded = [e for e in events if e["event"] == "rate_limit.exceeded"]
    assert exceeded[0]["limited_by"] == "sign_in" and exceeded[0]["target"] == f"email:{owner.email}"


def test_re_authentication_spends_the_same_password_budget(per_target, owner):
    for n in range(3):
        from_ip(f"198.51.100.{80 + n}").post("/auth/login/", {"login": owner.email, "password": "wrong"})
    signed_in = from_ip("198.51.100.84")
    signed_in.force_login(owner)
    assert signed_in.post("/auth/reauthenticate/", {"password": "wrong"}).status_code == 429


def test_a_refused_address_does_not_spend_the_accounts_budget(tight, owner):
    tight.SENSITIVE_TARGET_RATE_LIMITS = {**tight.SENSITIVE_TARGET_RATE_LIMITS, "sign_in": "5/5m"}
    noisy = from_ip("203.0.113.60")
    for _ in range(10):  # 3 counted, then refused for the address
        noisy.post("/auth/login/", {"login": owner.email, "password": "wrong"})
    # The account's budget saw 3 of them: others can still try twice.
    for n in range(2):
        assert from_ip(f"203.0.113.{61 + n}").post("/auth/login/", {"login": owner.email, "password": "x"}).status_code == 200
    assert from_ip("203.0.113.63").post("/auth/login/", {"login": owner.email, "password": "x"}).status_code == 429


def test_password_reset_is_limited_per_account_across_addresses(per_target, owner, events):
    for n in range(3):
        from_ip(f"198.51.100.{10 + n}").post("/auth/password/reset/", {"email": owner.email})
    assert from_ip("198.51.100.13").post("/auth/password/reset/", {"email": owner.email.upper()}).status_code == 429
    # Refused by this table's per-account budget (allauth's own per-minute limit is looser than 3 in 5 minutes).
    assert [e["limited_by"] for e in events if e["event"] == "rate_limit.exceeded"] == ["password_reset"]
    assert from_ip("198.51.100.13").post("/auth/password/reset/", {"email": "x@acme.test"}).status_code != 429
    # Reset links of one account: guessed keys from many addresses share its budget.
    for n in range(3):
        from_ip(f"198.51.100.{20 + n}").get(f"/auth/password/reset/key/zz-guess{n}/")
    assert from_ip("198.51.100.23").get("/auth/password/reset/key/zz-guess9/").status_code == 429
    assert from_ip("198.51.100.23").get("/auth/password/reset/key/zy-guess9/").status_code != 429


def test_second_factor_codes_are_limited_per_account_across_addresses(per_target, owner, password):
    enable_totp(owner)
    client = Client()
    response = client.post("/auth/login/", {"login": owner.email, "password": password}, REMOTE_ADDR="198.51.100.30")
    assert response.status_code == 302 and response["Location"] == "/auth/2fa/authenticate/"
    statuses = [
        client.post("/auth/2fa/authenticate/", {"code": "000000"}, REMOTE_ADDR=f"198.51.100.{31 + n}").status_code
        for n in range(4)
    ]
    assert statuses[:3] == [200, 200, 200] and statuses[3] == 429


def test_invitation_links_are_limited_per_organization(per_target, organization, owner):
    _invitation, token = invitation_create(organization=organization, actor=owner, email="new@example.test")
    # Unknown tokens, from many addresses, share one budget...
    for n in range(3):
        assert from_ip(f"198.51.100.{40 + n}").get(f"/invitations/guess-{n}/").status_code == 404
    assert from_ip("198.51.100.43").get("/invitations/guess-9/").status_code == 429
    # ...which is not the organization's: its real link still opens, three times.
    for n in range(3):
        assert from_ip(f"198.51.100.{44 + n}").get(f"/invitations/{token}/").status_code == 200
    assert from_ip("198.51.100.47").get(f"/invitations/{token}/").status_code == 429


def test_single_sign_on_is_limited_per_organization(per_target):
    for n in range(3):
        from_ip(f"198.51.100.{50 + n}").post("/sso/acme-dental/acs/", {"SAMLResponse": "eA=="})
    assert from_ip("198.51.100.53").get("/sso/ACME-dental/login/").status_code == 429  # starts and responses: one budget
    assert from_ip("198.51.100.53").get("/sso/globex-sales/login/").status_code != 429


def test_the_oauth_token_endpoint_is_limited_per_client(per_target):
    for n in range(2):
        from_ip(f"198.51.100.{60 + n}").post("/oauth/token", {"grant_type": "refresh_token", "client_id": "app-1"})
    # The same client authenticating with HTTP Basic counts the same.
    basic = "Basic " + __import__("base64").b64encode(b"app-1:secret").decode()
    from_ip("198.51.100.62").post("/oauth/token", {"grant_type": "refresh_token"}, HTTP_AUTHORIZATION=basic)
    refused = from_ip("198.51.100.63").post("/oauth/revoke_token", {"client_id": "app-1", "token": "x"})
    assert refused.status_code == 429 and refused.json()["error"] == "slow_down"
    assert from_ip("198.51.100.63").post("/oauth/token", {"client_id": "app-2"}).status_code != 429


def test_another_app_limits_its_route_by_name(tight, monkeypatch):
    """The entry for the provider webhooks to come: a route registered by name, limited by the same middleware."""
    monkeypatch.setattr(ratelimits, "SENSITIVE_ROUTES", dict(SENSITIVE_ROUTES))
    tight.SENSITIVE_TARGET_RATE_LIMITS = {**tight.SENSITIVE_TARGET_RATE_LIMITS, "webhook_account": "2/m"}

    def account(request, kwargs):
        return "account:" + request.GET.get("AccountSid", "")

    register_route("healthz", Limit(("GET",), "webhook_account", account))
    assert from_ip("198.51.100.70").get("/healthz", {"AccountSid": "AC1"}).status_code == 200
    assert from_ip("198.51.100.71").get("/healthz", {"AccountSid": "AC1"}).status_code == 200
    assert from_ip("198.51.100.72").get("/healthz", {"AccountSid": "AC1"}).status_code == 429  # per target
    assert from_ip("198.51.100.72").get("/healthz", {"AccountSid": "AC2"}).status_code == 200
    with pytest.raises(ValueError, match="already rate limited"):
        register_route("healthz", Limit(("POST",)))
    with pytest.raises(ValueError, match="needs a target"):
        register_route("webhook-x", Limit(("POST",), "webhook_account"))


def test_a_view_can_be_wrapped_instead(tight):
    @rate_limited("hooks:test", Limit(("POST",)))
    def hook(request):
        from django.http import HttpResponse

        return HttpResponse("ok")

    factory = RequestFactory()
    statuses = [hook(factory.post("/hooks/test/", REMOTE_ADDR="2001:db8:9::1")).status_code for _ in range(3)]
    refused = hook(factory.post("/hooks/test/", REMOTE_ADDR="2001:db8:9::2"))  # same /64
    assert statuses == [200, 200, 200] and refused.status_code == 429 and refused["Retry-After"]
    assert hook(factory.get("/hooks/test/", REMOTE_ADDR="2001:db8:9::2")).status_code == 200  # GET is not counted


def test_a_bad_rate_setting_is_refused_at_start(monkeypatch):
    import importlib

    import jagcall.settings.identity as identity
    from django.core.exceptions import ImproperlyConfigured

    monkeypatch.setenv("RATE_LIMIT_SIGN_IN_PER_ACCOUNT", "ten a minute")
    with pytest.raises(ImproperlyConfigured, match="like 30/m or 10/5m"):
        importlib.reload(identity)
    monkeypatch.delenv("RATE_LIMIT_SIGN_IN_PER_ACCOUNT")
    importlib.reload(identity)
