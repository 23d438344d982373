"""Turnstile verification through the real client against the local stand-in (tests/fakes/turnstile.py).

Each test names the rule it guards; removing that rule from
accounts/providers/turnstile.py makes the test fail.

A wrong secret is refused with code "unavailable" (not "invalid"): it is our
misconfiguration, not something the registrant did, and it is logged as an
error so it gets noticed.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from accounts.providers.turnstile import TurnstileRejected, TurnstileResult, turnstile_verify

MESSAGE = "The anti-robot check failed or expired. Please complete it again."
LOGGER = "accounts.providers.turnstile"


@pytest.fixture(autouse=True)
def _known_allowed_hosts(settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]


def verify(token, *, remote_ip="203.0.113.7", action="signup", **kwargs):
    return turnstile_verify(token=token, remote_ip=remote_ip, action=action, **kwargs)


def refused(token, **kwargs) -> TurnstileRejected:
    with pytest.raises(TurnstileRejected) as exc:
        verify(token, **kwargs)
    assert exc.value.message == MESSAGE
    return exc.value


# --- the happy path and what goes over the wire ------------------------------------


def test_a_valid_token_returns_what_siteverify_vouched_for(turnstile):
    token = turnstile.issue_token(action="signup", hostname="127.0.0.1")

    result = verify(token)

    assert isinstance(result, TurnstileResult)
    assert result.action == "signup"
    assert result.hostname == "127.0.0.1"
    assert abs(timezone.now() - result.challenge_ts) < timedelta(seconds=5)
    assert turnstile.is_spent(token)


def test_siteverify_receives_the_secret_the_token_the_remote_ip_and_a_fresh_idempotency_key(turnstile):
    first, second = turnstile.issue_token(), turnstile.issue_token()

    verify(first, remote_ip="203.0.113.7")
    verify(second, remote_ip=None)

    one, two = turnstile.siteverify_requests
    assert one.method == "POST"
    assert one.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert one.form["secret"] == "stand-in-secret"
    assert one.form["response"] == first
    assert one.form["remoteip"] == "203.0.113.7"
    assert uuid.UUID(one.form["idempotency_key"])
    assert two.form["response"] == second
    assert "remoteip" not in two.form
    assert two.form["idempotency_key"] != one.form["idempotency_key"]  # fresh per verification


# --- replays and age ---------------------------------------------------------------


def test_a_token_spent_at_siteverify_is_refused_as_expired_or_reused(turnstile):
    token = turnstile.issue_token()
    verify(token)

    error = refused(token)

    assert error.code == "expired_or_reused"
    assert error.error_codes == ("timeout-or-duplicate",)


def test_the_local_replay_guard_refuses_a_token_siteverify_accepts_twice(turnstile):
    token = turnstile.issue_token()
    verify(token)
    turnstile.unspend(token)  # siteverify forgets it spent the token

    error = refused(token)

    assert error.code == "expired_or_reused"
    assert turnstile.siteverify_requests[-1].reply["success"] is True  # only the local guard said no


def test_a_token_refused_for_an_outage_is_not_burnt_by_the_local_guard(turnstile):
    token = turnstile.issue_token()
    turnstile.mode = "error500"
    assert refused(token).code == "unavailable"

    turnstile.mode = "ok"
    assert verify(token).action == "signup"


def test_a_token_older_than_300_seconds_is_refused_by_siteverify(turnstile):
    token = turnstile.issue_token(age_seconds=301)

    error = refused(token)

    assert error.code == "expired_or_reused"
    assert error.error_codes == ("timeout-or-duplicate",)


def test_a_token_older_than_300_seconds_is_refused_even_if_siteverify_accepts_it(turnstile):
    turnstile.expire_tokens = False
    assert verify(turnstile.issue_token(age_seconds=290)).action == "signup"
    token = turnstile.issue_token(age_seconds=301)

    error = refused(token)

    assert error.code == "expired_or_reused"
    assert turnstile.siteverify_requests[-1].reply["success"] is True  # the client's own age check said no


# --- action and hostname -----------------------------------------------------------


def test_a_token_made_for_another_action_is_refused(turnstile):
    token = turnstile.issue_token(action="login")

    assert refused(token, action="signup").code == "wrong_action"


def test_a_token_solved_on_a_hostname_outside_allowed_hosts_is_refused(turnstile):
    token = turnstile.issue_token(hostname="evil.example")

    assert refused(token).code == "wrong_hostname"


def test_allowed_hosts_patterns_decide_the_default_hostnames(turnstile, settings):
    settings.ALLOWED_HOSTS = ["jagcall.example:443", ".customers.example"]

    assert verify(turnstile.issue_token(hostname="jagcall.example")).hostname == "jagcall.example"
    assert verify(turnstile.issue_token(hostname="acme.customers.example")).hostname == "acme.customers.example"
    assert refused(turnstile.issue_token(hostname="127.0.0.1")).code == "wrong_hostname"
    assert refused(turnstile.issue_token(hostname="jagcall.example.evil")).code == "wrong_hostname"


def test_a_wildcard_allowed_hosts_accepts_any_hostname(turnstile, settings):
    settings.ALLOWED_HOSTS = ["*"]

    assert verify(turnstile.issue_token(hostname="anything.example")).hostname == "anything.example"


def test_explicit_hostnames_replace_allowed_hosts(turnstile):
    hostnames = ["signup.jagcall.example"]

    assert verify(turnstile.issue_token(hostname="signup.jagcall.example"), hostnames=hostnames)
    assert refused(turnstile.issue_token(hostname="127.0.0.1"), hostnames=hostnames).code == "wrong_hostname"


# --- bad tokens --------------------------------------------------------------------


def test_an_unknown_token_is_refused_as_invalid(turnstile):
    error = refused("0.never-issued-by-turnstile")

    assert error.code == "invalid"
    assert error.error_codes == ("invalid-input-response",)


@pytest.mark.parametrize(("token", "code"), [("", "missing"), ("   ", "missing"), ("x" * 2049, "invalid")])
def test_empty_and_over_long_tokens_are_refused_without_calling_siteverify(turnstile, token, code):
    assert refused(token).code == code
    assert turnstile.requests == []


def test_a_token_of_exactly_2048_characters_is_sent_to_siteverify(turnstile):
    assert refused("x" * 2048).code == "invalid"
    assert len(turnstile.siteverify_requests) == 1


# --- failing closed ----------------------------------------------------------------


def test_a_wrong_secret_is_refused_as_unavailable_and_logged_as_an_error(turnstile, settings, caplog):
    settings.TURNSTILE_SECRET_KEY = "not-the-secret-xyz"
    token = turnstile.issue_token()

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        error = refused(token)

    assert error.code == "unavailable"
    assert error.error_codes == ("invalid-input-secret",)
    assert any(r.levelno == logging.ERROR and r.name == LOGGER for r in caplog.records)
    assert "not-the-secret-xyz" not in caplog.text
    assert token not in caplog.text


def test_a_slow_siteverify_is_refused_within_the_timeout(turnstile, settings, caplog):
    settings.TURNSTILE_TIMEOUT_SECONDS = 1
    turnstile.mode = "slow"
    token = turnstile.issue_token()

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        error = refused(token)
    elapsed = time.monotonic() - started

    assert error.code == "unavailable"
    assert elapsed < 3
    assert len(turnstile.siteverify_requests) == 1
    assert any(r.levelno == logging.WARNING and r.name == LOGGER for r in caplog.records)


@pytest.mark.parametrize("mode", ["error500", "garbage", "no_success"])
def test_an_unusable_siteverify_reply_is_refused_as_unavailable(turnstile, caplog, mode):
    turnstile.mode = mode
    token = turnstile.issue_token()

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        error = refused(token)

    assert error.code == "unavailable"
    assert len(turnstile.siteverify_requests) == 1
    assert any(r.levelno == logging.WARNING and r.name == LOGGER for r in caplog.records)
    assert "stand-in-secret" not in caplog.text
    assert token not in caplog.text


def test_an_unreachable_siteverify_is_refused_as_unavailable(turnstile):
    token = turnstile.issue_token()
    turnstile.stop()  # nothing listens on the port any more

    assert refused(token).code == "unavailable"


# --- configuration -----------------------------------------------------------------


def test_calling_it_while_turnstile_is_disabled_is_a_programming_error(turnstile, settings):
    settings.TURNSTILE_ENABLED = False

    with pytest.raises(ImproperlyConfigured):
        verify(turnstile.issue_token())
    assert turnstile.requests == []


def test_plain_http_is_refused_for_a_verify_url_that_is_not_loopback(turnstile, settings):
    settings.TURNSTILE_VERIFY_URL = "http://challenges.cloudflare.com/turnstile/v0/siteverify"

    with pytest.raises(ImproperlyConfigured):
        verify(turnstile.issue_token())


def test_the_refusal_is_an_application_error_for_the_form(turnstile):
    from jagcall.kernel.errors import ApplicationError

    error = refused(turnstile.issue_token(action="login"))

    assert isinstance(error, ApplicationError)
    assert error.status == 400
    assert str(error) == MESSAGE
