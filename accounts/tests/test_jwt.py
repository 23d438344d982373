"""JWTs for the API: issued for one organization, checked on every use (SECURITY.md "JWT auth with expiry").

Every request goes over HTTP through DRF's APIClient; tokens are decoded and
forged with PyJWT, never by mocking simplejwt. Each refusal test first shows
the same kind of token passing, so it fails if the rule it names is removed.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import timedelta

import jwt
import pytest
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.conf import settings
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import Membership, OrganizationStatus
from accounts.permissions import Role
from accounts.scopes import scopes_for_role
from accounts.tests.factories import DEFAULT_PASSWORD, MembershipFactory, UserFactory, enable_totp

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/v1/auth/token"
REFRESH_URL = "/api/v1/auth/token/refresh"
REVOKE_URL = "/api/v1/auth/token/revoke"
ME_URL = "/api/v1/me"
AUDIENCE = settings.SIMPLE_JWT["AUDIENCE"]
ISSUER = settings.SIMPLE_JWT["ISSUER"]


# --- helpers ---------------------------------------------------------------------------


def obtain(client, email, organization_slug, password=DEFAULT_PASSWORD, **extra):
    body = {"email": email, "password": password, "organization": organization_slug, **extra}
    return client.post(TOKEN_URL, body, format="json")


def access_for(client, user, organization, **extra) -> str:
    response = obtain(client, user.email, organization.slug, **extra)
    assert response.status_code == 200, response.content
    return response.json()["access"]


def pair_for(client, user, organization, **extra) -> dict:
    response = obtain(client, user.email, organization.slug, **extra)
    assert response.status_code == 200, response.content
    return response.json()


def me(client, token, **extra):
    return client.get(ME_URL, HTTP_AUTHORIZATION=f"Bearer {token}", **extra)


def refresh(client, token):
    return client.post(REFRESH_URL, {"refresh": token}, format="json")


def revoke(client, token):
    return client.post(REVOKE_URL, {"refresh": token}, format="json")


def claims(user, organization, **overrides) -> dict:
    """An access token's payload as the API issues it; ``None`` drops a claim."""
    now = int(time.time())
    payload = {
        "token_type": "access",
        "exp": now + 900,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "sub": str(user.pk),
        "org": str(organization.pk),
        "aud": AUDIENCE,
        "iss": ISSUER,
    }
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


def sign(payload, key=None, algorithm="HS256") -> str:
    return jwt.encode(payload, key or settings.JWT_SIGNING_KEY, algorithm=algorithm)


def decode(token: str) -> dict:
    """Verify a token as a third party would: the JWT key, HS256 only, our audience and issuer."""
    return jwt.decode(token, settings.JWT_SIGNING_KEY, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER)


def b64url(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def code_at(secret: str, steps_from_now: int = 0) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30 + steps_from_now))


def wrong_code(secret: str) -> str:
    valid_now = {code_at(secret, step) for step in (-1, 0, 1)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in valid_now)


# --- issuance ------------------------------------------------------------------------------


def test_token_pair_is_bound_to_one_organization_with_checked_claims(api_client, owner, organization, events):
    response = obtain(api_client, owner.email, organization.slug)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access", "refresh", "token_type", "expires_in", "organization"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["organization"] == organization.slug
    assert "no-store" in response["Cache-Control"]

    assert jwt.get_unverified_header(body["access"])["alg"] == "HS256"
    access = decode(body["access"])
    assert access["sub"] == str(owner.pk)
    assert access["org"] == str(organization.pk)
    assert access["aud"] == AUDIENCE and access["iss"] == ISSUER
    assert access["token_type"] == "access"
    assert access["exp"] - access["iat"] == 900
    assert access["jti"]
    refresh_claims = decode(body["refresh"])
    assert refresh_claims["token_type"] == "refresh"
    assert refresh_claims["org"] == str(organization.pk) and refresh_claims["sub"] == str(owner.pk)
    assert refresh_claims["jti"] != access["jti"]
    # Signed with the dedicated key, not SECRET_KEY.
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(body["access"], settings.SECRET_KEY, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER)

    issued = [e for e in events if e["event"] == "api.token_issued"]
    assert len(issued) == 1
    assert issued[0]["user_id"] == str(owner.pk) and issued[0]["organization_id"] == str(organization.pk)


def test_me_answers_for_the_tokens_organization_only(api_client, organization, other_organization):
    person = UserFactory(email="both@example.test", name="Pat Both")
    MembershipFactory(organization=organization, user=person, role=Role.MEMBER)
    MembershipFactory(organization=other_organization, user=person, role=Role.ADMIN)

    response = me(api_client, access_for(api_client, person, organization))
    assert response.status_code == 200
    assert response.json() == {
        "user": {"id": str(person.pk), "email": person.email, "name": "Pat Both"},
        "api_key": None,
        "organization": {"id": str(organization.pk), "slug": organization.slug, "name": organization.name},
        "role": "member",
        "scopes": sorted(scopes_for_role(Role.MEMBER)),
    }
    assert "api_keys:read" not in response.json()["scopes"]

    other = me(api_client, access_for(api_client, person, other_organization)).json()
    assert other["organization"]["slug"] == other_organization.slug
    assert other["role"] == "admin"


def test_a_token_naming_an_organization_the_user_is_not_in_is_refused(
    api_client, owner, organization, other_organization
):
    assert me(api_client, sign(claims(owner, organization))).status_code == 200
    # Correctly signed, but the user is not a member of the organization it names.
    assert me(api_client, sign(claims(owner, other_organization))).status_code == 401


def test_removing_the_membership_stops_the_token_at_once(api_client, member, organization):
    pair = pair_for(api_client, member, organization)
    assert me(api_client, pair["access"]).status_code == 200

    Membership.objects.for_org(organization).filter(user=member).delete()

    response = me(api_client, pair["access"])  # still unexpired
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "organization_unavailable"
    assert refresh(api_client, pair["refresh"]).status_code == 401


def test_a_terminated_organizations_token_is_refused(api_client, owner, organization):
    token = access_for(api_client, owner, organization)
    assert me(api_client, token).status_code == 200
    organization.status = OrganizationStatus.TERMINATED
    organization.terminated_at = timezone.now()
    organization.save()
    assert me(api_client, token).status_code == 401


def test_refusals_do_not_tell_which_part_was_wrong(api_client, owner, organization, other_organization, events):
    wrong_password = obtain(api_client, owner.email, organization.slug, password="not the password at all")
    unknown_email = obtain(api_client, "nobody@example.test", organization.slug)
    not_a_member = obtain(api_client, owner.email, other_organization.slug)
    no_such_org = obtain(api_client, owner.email, "no-such-organization")
    inactive = UserFactory(email="gone@example.test", is_active=False)
    MembershipFactory(organization=organization, user=inactive)
    inactive_user = obtain(api_client, inactive.email, organization.slug)

    responses = [wrong_password, unknown_email, not_a_member, no_such_org, inactive_user]
    assert {r.status_code for r in responses} == {401}
    bodies = [r.json() for r in responses]
    assert all(b == bodies[0] for b in bodies), bodies
    assert bodies[0]["error"]["code"] == "invalid_credentials"
    reasons = [e["reason"] for e in events if e["event"] == "api.token_refused"]
    assert reasons == ["invalid_credentials", "invalid_credentials", "not_a_member", "not_a_member", "inactive"]
    assert not any(e["event"] == "api.token_issued" for e in events)


def test_an_unverified_address_cannot_get_tokens(api_client, organization):
    person = UserFactory(email="new@example.test", email_verified=False)
    MembershipFactory(organization=organization, user=person)
    response = obtain(api_client, person.email, organization.slug)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "email_unverified"
    assert "Verify your email" in response.json()["error"]["message"]


def test_password_guessing_is_limited_per_account(api_client, owner, organization):
    for _ in range(5):
        assert obtain(api_client, owner.email, organization.slug, password="a wrong guess!").status_code == 401
    response = obtain(api_client, owner.email, organization.slug)  # even the right password, now
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "too_many_attempts"


# --- two-factor ----------------------------------------------------------------------------


def test_a_two_factor_user_must_send_a_valid_code(api_client, owner, organization, events):
    secret = enable_totp(owner)
    missing = obtain(api_client, owner.email, organization.slug)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "otp_required"
    wrong = obtain(api_client, owner.email, organization.slug, otp_code=wrong_code(secret))
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "otp_invalid"
    right = obtain(api_client, owner.email, organization.slug, otp_code=code_at(secret))
    assert right.status_code == 200
    assert me(api_client, right.json()["access"]).status_code == 200
    assert [e["reason"] for e in events if e["event"] == "api.token_refused"] == ["otp_required", "otp_invalid"]
    assert any(e["event"] == "user.mfa_used" for e in events)


def test_a_totp_code_works_once(api_client, owner, organization):
    secret = enable_totp(owner)
    code = code_at(secret)
    assert obtain(api_client, owner.email, organization.slug, otp_code=code).status_code == 200
    again = obtain(api_client, owner.email, organization.slug, otp_code=code)
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "otp_invalid"


def test_a_recovery_code_works_once(api_client, owner, organization):
    enable_totp(owner)
    codes = RecoveryCodes.activate(owner).generate_codes()
    assert obtain(api_client, owner.email, organization.slug, otp_code=codes[0]).status_code == 200
    spent = obtain(api_client, owner.email, organization.slug, otp_code=codes[0])
    assert spent.status_code == 401
    assert spent.json()["error"]["code"] == "otp_invalid"
    assert obtain(api_client, owner.email, organization.slug, otp_code=codes[1]).status_code == 200


def test_code_guessing_is_limited(api_client, owner, organization):
    secret = enable_totp(owner)
    for _ in range(5):
        assert obtain(api_client, owner.email, organization.slug, otp_code=wrong_code(secret)).status_code == 401
    response = obtain(api_client, owner.email, organization.slug, otp_code=code_at(secret))
    assert response.status_code == 429


def test_an_organization_requiring_two_factor_refuses_members_without_it(api_client, member, organization):
    token = access_for(api_client, member, organization)
    organization.require_two_factor = True
    organization.save()

    response = obtain(api_client, member.email, organization.slug)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "two_factor_required"
    assert "two-factor" in response.json()["error"]["message"]
    assert me(api_client, token).status_code == 403  # a token from before the rule stops too

    secret = enable_totp(member)
    fresh = obtain(api_client, member.email, organization.slug, otp_code=code_at(secret))
    assert fresh.status_code == 200
    assert me(api_client, fresh.json()["access"]).status_code == 200
    # [!!] The old token was obtained without the second factor: it stays refused.
    assert me(api_client, token).status_code == 403


# --- validation of the access token ---------------------------------------------------------


def test_an_expired_access_token_is_refused(api_client, owner, organization):
    def simplejwt_token(issued_at):
        token = AccessToken()
        token["sub"] = str(owner.pk)
        token["org"] = str(organization.pk)
        token.set_iat(at_time=issued_at)
        token.set_exp(from_time=issued_at)
        return str(token)

    assert me(api_client, simplejwt_token(timezone.now())).status_code == 200
    expired = me(api_client, simplejwt_token(timezone.now() - timedelta(minutes=16)))
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "token_not_valid"
    past = int(time.time()) - 1
    assert me(api_client, sign(claims(owner, organization, exp=past, iat=past - 900))).status_code == 401


def test_a_token_without_exp_or_not_yet_valid_is_refused(api_client, owner, organization):
    assert me(api_client, sign(claims(owner, organization))).status_code == 200
    assert me(api_client, sign(claims(owner, organization, exp=None))).status_code == 401
    assert me(api_client, sign(claims(owner, organization, nbf=int(time.time()) + 300))).status_code == 401


def test_a_tampered_signature_is_refused(api_client, owner, organization):
    token = access_for(api_client, owner, organization)
    assert me(api_client, token).status_code == 200
    head, _, signature = token.rpartition(".")
    middle = len(signature) // 2  # a middle character carries six signature bits (the last may carry padding)
    flipped = "A" if signature[middle] != "A" else "B"
    tampered = f"{head}.{signature[:middle]}{flipped}{signature[middle + 1:]}"
    assert me(api_client, tampered).status_code == 401

    header, payload, _ = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["role"] = "owner"
    assert me(api_client, f"{header}.{b64url(data)}.{signature}").status_code == 401


def test_alg_none_is_refused(api_client, owner, organization):
    payload = claims(owner, organization)
    assert me(api_client, sign(payload)).status_code == 200
    unsigned = f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(payload)}."
    assert me(api_client, unsigned).status_code == 401
    for spelling in ("None", "NONE"):
        assert me(api_client, f"{b64url({'alg': spelling, 'typ': 'JWT'})}.{b64url(payload)}.").status_code == 401


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_any_other_algorithm_is_refused_even_with_the_right_key(api_client, owner, organization, algorithm):
    payload = claims(owner, organization)
    assert me(api_client, sign(payload)).status_code == 200
    assert me(api_client, sign(payload, algorithm=algorithm)).status_code == 401


def test_a_token_signed_with_secret_key_is_refused(api_client, owner, organization):
    payload = claims(owner, organization)
    assert me(api_client, sign(payload)).status_code == 200
    assert settings.SECRET_KEY != settings.JWT_SIGNING_KEY
    assert me(api_client, sign(payload, key=settings.SECRET_KEY)).status_code == 401


@pytest.mark.parametrize(
    "override",
    [
        {"aud": "someone-elses-api"},
        {"aud": None},
        {"iss": "https://issuer.example.invalid"},
        {"iss": None},
    ],
    ids=["wrong-aud", "no-aud", "wrong-iss", "no-iss"],
)
def test_a_token_for_another_audience_or_issuer_is_refused(api_client, owner, organization, override):
    assert me(api_client, sign(claims(owner, organization))).status_code == 200
    assert me(api_client, sign(claims(owner, organization, **override))).status_code == 401


@pytest.mark.parametrize("claim", ["org", "sub", "jti"])
def test_a_token_missing_an_identity_claim_is_refused(api_client, owner, organization, claim):
    assert me(api_client, sign(claims(owner, organization))).status_code == 200
    assert me(api_client, sign(claims(owner, organization, **{claim: None}))).status_code == 401


def test_a_refresh_token_is_not_an_access_token(api_client, owner, organization):
    pair = pair_for(api_client, owner, organization)
    assert me(api_client, pair["access"]).status_code == 200
    assert me(api_client, pair["refresh"]).status_code == 401
    assert refresh(api_client, pair["access"]).status_code == 401  # nor the other way round


def test_a_token_in_the_query_string_is_ignored(api_client, owner, organization):
    token = access_for(api_client, owner, organization)
    assert me(api_client, token).status_code == 200
    for param in ("access_token", "token", "jwt", "bearer"):
        response = api_client.get(ME_URL, {param: token})
        assert response.status_code == 401, param
    assert api_client.post(ME_URL, {"access_token": token}, format="json").status_code == 401


def test_without_a_token_the_answer_is_401_with_a_bearer_challenge(api_client):
    response = api_client.get(ME_URL)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["message"]


def test_an_inactive_users_token_is_refused(api_client, owner, organization):
    pair = pair_for(api_client, owner, organization)
    assert me(api_client, pair["access"]).status_code == 200
    owner.is_active = False
    owner.save(update_fields=["is_active"])
    assert me(api_client, pair["access"]).status_code == 401
    assert refresh(api_client, pair["refresh"]).status_code == 401


# --- refresh and revoke -----------------------------------------------------------------------


def test_refresh_rotates_and_the_old_refresh_token_is_spent(api_client, owner, organization, events):
    first = pair_for(api_client, owner, organization)
    response = refresh(api_client, first["refresh"])
    assert response.status_code == 200
    second = response.json()
    assert second["refresh"] != first["refresh"] and second["access"] != first["access"]
    assert second["organization"] == organization.slug and second["expires_in"] == 900
    old, new, access = (decode(t) for t in (first["refresh"], second["refresh"], second["access"]))
    assert new["org"] == access["org"] == str(organization.pk)
    assert new["exp"] <= old["exp"]  # rotation does not extend the chain
    assert me(api_client, second["access"]).status_code == 200

    assert new["fam"] == old["fam"]  # the same chain
    assert any(e["event"] == "api.token_refreshed" for e in events)


def test_a_spent_refresh_token_presented_again_revokes_its_whole_chain(api_client, owner, organization, events):
    laptop = pair_for(api_client, owner, organization)
    phone = pair_for(api_client, owner, organization)  # another sign-in: a chain of its own
    rotated = refresh(api_client, laptop["refresh"]).json()

    reused = refresh(api_client, laptop["refresh"])  # a copy of the spent token turns up
    assert reused.status_code == 401
    assert reused.json()["error"]["code"] == "token_not_valid"
    assert refresh(api_client, rotated["refresh"]).status_code == 401  # the chain is over for everyone
    assert refresh(api_client, phone["refresh"]).status_code == 200  # other sign-ins are untouched
    refused = [e for e in events if e["event"] == "api.token_refused" and e.get("reason") == "refresh_reused"]
    assert refused and refused[0]["family_tokens_revoked"] == 1


def test_a_forged_token_naming_a_chain_cannot_revoke_it(api_client, owner, organization):
    pair = pair_for(api_client, owner, organization)
    family = decode(pair["refresh"])["fam"]
    forged = sign(claims(owner, organization, token_type="refresh", fam=family), key="not-the-jwt-signing-key-of-this-deployment-at-all")
    assert refresh(api_client, forged).status_code == 401
    assert refresh(api_client, pair["refresh"]).status_code == 200  # the real chain goes on


def test_rotation_does_not_extend_the_refresh_lifetime(api_client, owner, organization):
    """A refresh token near the end of its life: its successor ends when it would have."""
    from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

    now = int(time.time())
    payload = claims(owner, organization, token_type="refresh", exp=now + 3600, iat=now - 6 * 86400)
    old_refresh = sign(payload)
    OutstandingToken.objects.create(
        user=owner,
        jti=payload["jti"],
        token=old_refresh,
        created_at=timezone.now() - timedelta(days=6),
        expires_at=timezone.now() + timedelta(hours=1),
    )
    response = refresh(api_client, old_refresh)
    assert response.status_code == 200
    assert decode(response.json()["refresh"])["exp"] == now + 3600


def test_a_revoked_refresh_token_cannot_be_used(api_client, owner, organization):
    pair = pair_for(api_client, owner, organization)
    response = revoke(api_client, pair["refresh"])
    assert response.status_code == 204
    assert refresh(api_client, pair["refresh"]).status_code == 401
    other = pair_for(api_client, owner, organization)
    assert refresh(api_client, other["refresh"]).status_code == 200  # only the revoked one
