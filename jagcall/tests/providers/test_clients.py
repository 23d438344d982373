"""Each provider's official SDK, built by jagcall.kernel.providers, really talks to the base
URL of PROVIDER_BASE_URLS with the right credentials; its failures become one ProviderError
with the right retryable flag and no secret in the message or the logs."""

from __future__ import annotations

import base64
import json
import logging

import pytest

from jagcall.kernel.providers import (
    SIMULATED_CREDENTIALS,
    ProviderError,
    anthropic_client,
    deepgram_client,
    elevenlabs_client,
    elevenlabs_request_options,
    openai_client,
    provider_operation,
    twilio_client,
)
from jagcall.tests.providers.conftest import (
    ANTHROPIC_KEY,
    DEEPGRAM_KEY,
    ELEVENLABS_KEY,
    OPENAI_KEY,
    TWILIO_SID,
    TWILIO_TOKEN,
    Canned,
)

SUBACCOUNT_SID = "AC" + "2" * 32
ACCOUNT = {
    "sid": TWILIO_SID, "friendly_name": "JagCall", "status": "active", "type": "Full", "owner_account_sid": TWILIO_SID,
}
MODELS = {"object": "list", "data": [{"id": "gpt-test", "object": "model", "created": 0, "owned_by": "jagcall"}]}
MESSAGE = {
    "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-test",
    "content": [{"type": "text", "text": "Hello"}], "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 3, "output_tokens": 1},
}
TRANSCRIPT = {
    "metadata": {
        "transaction_key": "deprecated", "request_id": "5d5e5f60-0000-4000-8000-000000000001", "sha256": "0" * 64,
        "created": "2026-01-01T00:00:00Z", "duration": 1.0, "channels": 1, "models": ["nova-3"], "model_info": {},
    },
    "results": {"channels": [{"alternatives": [{"transcript": "hello there", "confidence": 0.99, "words": []}]}]},
}
VOICES = {"voices": [], "has_more": False, "total_count": 0, "next_page_token": None}


def twilio_call():
    return twilio_client().api.v2010.accounts(TWILIO_SID).fetch()


def openai_call():
    return openai_client().models.list()


def anthropic_call():
    return anthropic_client().messages.create(
        model="claude-test", max_tokens=16, messages=[{"role": "user", "content": "Hi"}]
    )


def deepgram_call():
    return deepgram_client().listen.v1.media.transcribe_file(request=b"RIFF....WAVEfmt ", model="nova-3")


def elevenlabs_call():
    return elevenlabs_client().voices.search(request_options=elevenlabs_request_options())


# provider, the call, its canned answer, the request it must make (method, path), the credential header it must carry
CASES = {
    "twilio": (twilio_call, ACCOUNT, ("GET", f"/2010-04-01/Accounts/{TWILIO_SID}.json"),
               ("Authorization", "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode())),
    "openai": (openai_call, MODELS, ("GET", "/v1/models"), ("Authorization", f"Bearer {OPENAI_KEY}")),
    "anthropic": (anthropic_call, MESSAGE, ("POST", "/v1/messages"), ("X-Api-Key", ANTHROPIC_KEY)),
    "deepgram": (deepgram_call, TRANSCRIPT, ("POST", "/v1/listen?model=nova-3"),
                 ("Authorization", f"Token {DEEPGRAM_KEY}")),
    "elevenlabs": (elevenlabs_call, VOICES, ("GET", "/v2/voices"), ("Xi-Api-Key", ELEVENLABS_KEY)),
}
SECRETS = {
    "twilio": TWILIO_TOKEN, "openai": OPENAI_KEY, "anthropic": ANTHROPIC_KEY, "deepgram": DEEPGRAM_KEY,
    "elevenlabs": ELEVENLABS_KEY,
}
# What each provider answers on refused credentials (their own error bodies).
REFUSALS = {
    "twilio": {"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003",
               "status": 401},
    "openai": {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                         "code": "invalid_api_key"}},
    "anthropic": {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}},
    "deepgram": {"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials.", "request_id": "r-1"},
    "elevenlabs": {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}},
}
REFUSAL_CODES = {"twilio": 20003, "openai": "invalid_api_key", "anthropic": "authentication_error",
                 "deepgram": "INVALID_AUTH", "elevenlabs": "invalid_api_key"}
HINTS = {"twilio": "check the account SID and auth token", "openai": "check the OpenAI API key",
         "anthropic": "check the Anthropic API key", "deepgram": "check the Deepgram API key",
         "elevenlabs": "check the ElevenLabs API key"}


def basic(username, password):
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def header(received, name):
    return {key.lower(): value for key, value in received.headers.items()}.get(name.lower())


@pytest.mark.parametrize("provider", list(CASES))
def test_the_sdk_reaches_the_base_url_with_its_credentials(provider, provider_settings, local_server):
    call, answer, (method, path), (auth_header, auth_value) = CASES[provider]
    local_server.answer(Canned(200, answer))

    with provider_operation(provider, "smoke"):
        result = call()

    assert result is not None
    [received] = local_server.requests
    assert (received.method, received.path) == (method, path)
    assert header(received, auth_header) == auth_value


@pytest.mark.parametrize("provider", list(CASES))
def test_refused_credentials_become_a_permanent_error_that_says_what_to_check(
    provider, provider_settings, local_server, caplog
):
    call = CASES[provider][0]
    local_server.answer(Canned(401, REFUSALS[provider]))
    caplog.set_level(logging.DEBUG)

    with pytest.raises(ProviderError) as raised:
        with provider_operation(provider, "list voices"):
            call()

    error = raised.value
    assert (error.provider, error.operation, error.status, error.retryable) == (provider, "list voices", 401, False)
    assert error.code == REFUSAL_CODES[provider]
    assert str(error) == f"{provider} list voices: {error.message}"
    assert HINTS[provider] in error.message
    assert SECRETS[provider] not in str(error) and SECRETS[provider] not in caplog.text
    assert str(error) in caplog.text  # logged once, redacted


@pytest.mark.parametrize("provider", list(CASES))
def test_a_provider_message_echoing_the_secret_is_redacted(provider, provider_settings, local_server, caplog):
    call, secret = CASES[provider][0], SECRETS[provider]
    body = {"message": f"The key {secret} is not valid here", "code": 21211, "status": 400}
    local_server.answer(Canned(400, body))
    caplog.set_level(logging.DEBUG)

    with pytest.raises(ProviderError) as raised:
        with provider_operation(provider, "create"):
            call()

    error = raised.value
    assert (error.status, error.retryable) == (400, False)
    assert "is not valid here" in error.message and "[redacted]" in error.message
    assert secret not in str(error) and secret not in repr(error.args)
    assert secret not in caplog.text


@pytest.mark.parametrize("status", [429, 500, 503])
@pytest.mark.parametrize("provider", list(CASES))
def test_rate_limits_and_server_errors_are_retryable(provider, status, provider_settings, local_server):
    # Every answer, whatever the number of retries.
    local_server.default = Canned(status, {"message": "busy"}, {"retry-after": "0"})

    with pytest.raises(ProviderError) as raised:
        with provider_operation(provider, "call"):
            CASES[provider][0]()

    error = raised.value
    assert (error.status, error.retryable) == (status, True)
    assert ("try again in a moment" if status == 429 else "try again later") in error.message


@pytest.mark.parametrize("provider", list(CASES))
def test_a_provider_that_does_not_answer_in_time_is_a_retryable_timeout(provider, provider_settings, local_server):
    local_server.answer(Canned(200, {}, delay=2.5))  # PROVIDER_TIMEOUT_SECONDS is 1

    with pytest.raises(ProviderError) as raised:
        with provider_operation(provider, "call"):
            CASES[provider][0]()

    error = raised.value
    assert (error.status, error.retryable) == (None, True)
    assert error.message == "did not answer in 1 s: try again in a moment"


@pytest.mark.parametrize("provider", list(CASES))
def test_a_provider_that_cannot_be_reached_is_a_retryable_connection_error(provider, provider_settings, local_server):
    closed = local_server.base_url
    local_server.httpd.shutdown()
    local_server.httpd.server_close()
    provider_settings.PROVIDER_BASE_URLS = {provider: closed}

    with pytest.raises(ProviderError) as raised:
        with provider_operation(provider, "call"):
            CASES[provider][0]()

    assert raised.value.retryable is True
    assert raised.value.message.startswith("could not be reached: check the network connection")


@pytest.mark.parametrize("provider", ["openai", "anthropic", "deepgram"])
def test_sdks_that_can_retry_retry_as_often_as_configured(provider, provider_settings, local_server):
    provider_settings.PROVIDER_MAX_RETRIES = 2
    call, answer = CASES[provider][:2]
    fast = {"retry-after-ms": "1", "retry-after": "0"}
    busy = Canned(503, {"message": "busy"}, fast)
    local_server.answer(busy, busy, Canned(200, answer))

    with provider_operation(provider, "call"):
        call()

    assert len(local_server.requests) == 3


@pytest.mark.parametrize("retries", [0, 1])
def test_elevenlabs_retries_a_server_error_as_often_as_configured_not_its_own_default(
    retries, provider_settings, local_server
):
    # The SDK retries twice unless each call says otherwise (request_options); ours say PROVIDER_MAX_RETRIES.
    provider_settings.PROVIDER_MAX_RETRIES = retries
    local_server.default = Canned(503, {"detail": {"status": "busy", "message": "busy"}})

    with pytest.raises(ProviderError) as raised:
        with provider_operation("elevenlabs", "list voices"):
            elevenlabs_call()

    assert (raised.value.status, raised.value.retryable) == (503, True)
    assert len(local_server.requests) == 1 + retries
    assert elevenlabs_request_options() == {"max_retries": retries, "timeout_in_seconds": 1.0}


def test_twilio_acts_on_a_subaccount_with_the_parents_credentials(provider_settings, local_server):
    local_server.answer(Canned(200, {**ACCOUNT, "sid": SUBACCOUNT_SID}))

    account = twilio_client(subaccount_sid=SUBACCOUNT_SID).api.v2010.account.fetch()

    assert account.sid == SUBACCOUNT_SID
    [received] = local_server.requests
    assert received.path == f"/2010-04-01/Accounts/{SUBACCOUNT_SID}.json"
    assert header(received, "Authorization") == CASES["twilio"][3][1]


def test_twilio_takes_an_organizations_own_credentials_and_redacts_them(provider_settings, local_server):
    own_sid, own_token = "AC" + "3" * 32, "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
    local_server.answer(Canned(400, {"code": 21452, "message": f"No numbers for token {own_token}", "status": 400}))

    with pytest.raises(ProviderError) as raised:
        with provider_operation("twilio", "search numbers"):
            twilio_client(own_sid, own_token).api.v2010.accounts(own_sid).fetch()

    assert header(local_server.requests[0], "Authorization") == basic(own_sid, own_token)
    assert raised.value.code == 21452 and own_token not in str(raised.value)


def test_twilio_never_takes_region_or_edge_from_the_environment(provider_settings, local_server, monkeypatch):
    monkeypatch.setenv("TWILIO_REGION", "au1")
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    local_server.answer(Canned(200, ACCOUNT))

    twilio_call()

    assert local_server.requests[0].path == f"/2010-04-01/Accounts/{TWILIO_SID}.json"


def test_twilio_urls_are_rewritten_keeping_path_and_query(provider_settings, local_server):
    http = twilio_client().http_client
    assert http.rewrite("https://api.twilio.com/2010-04-01/Accounts/AC1/Calls.json?PageSize=2") == (
        f"{local_server.base_url}/2010-04-01/Accounts/AC1/Calls.json?PageSize=2"
    )
    assert http.rewrite("https://voice.twilio.com/v1/Settings") == f"{local_server.base_url}/v1/Settings"
    assert http.rewrite("https://example.com/recording.wav") == "https://example.com/recording.wav"
    provider_settings.PROVIDER_BASE_URLS = {}
    assert twilio_client().http_client.rewrite("https://api.twilio.com/x") == "https://api.twilio.com/x"


def test_clients_use_the_configured_timeout_and_retries(provider_settings):
    provider_settings.PROVIDER_TIMEOUT_SECONDS = 7
    provider_settings.PROVIDER_MAX_RETRIES = 4
    assert twilio_client().http_client.timeout == 7
    assert (openai_client().timeout, openai_client().max_retries) == (7, 4)
    assert (anthropic_client().timeout, anthropic_client().max_retries) == (7, 4)
    assert str(openai_client().base_url) == provider_settings.PROVIDER_BASE_URLS["openai"] + "/v1/"


def test_without_credentials_a_builder_says_what_to_set(provider_settings):
    provider_settings.OPENAI_API_KEY = ""
    provider_settings.TWILIO_AUTH_TOKEN = ""
    with pytest.raises(ProviderError, match="set OPENAI_API_KEY") as raised:
        openai_client()
    assert raised.value.retryable is False
    with pytest.raises(ProviderError, match="set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"):
        twilio_client()


def test_simulated_mode_uses_the_simulated_credentials(provider_settings, local_server):
    provider_settings.SIMULATED_PROVIDERS = True
    provider_settings.ELEVENLABS_API_KEY = ""
    provider_settings.TWILIO_ACCOUNT_SID = provider_settings.TWILIO_AUTH_TOKEN = ""
    local_server.answer(Canned(200, VOICES), Canned(200, ACCOUNT))

    elevenlabs_call()
    sid, token = SIMULATED_CREDENTIALS["twilio"]
    twilio_client().api.v2010.accounts(sid).fetch()

    assert header(local_server.requests[0], "xi-api-key") == SIMULATED_CREDENTIALS["elevenlabs"]
    assert header(local_server.requests[1], "Authorization") == basic(sid, token)


async def test_provider_operation_works_in_async_code(provider_settings, local_server):
    import anthropic

    local_server.answer(Canned(529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
    client = anthropic.AsyncAnthropic(api_key=ANTHROPIC_KEY, base_url=local_server.base_url, max_retries=0)

    with pytest.raises(ProviderError) as raised:
        async with provider_operation("anthropic", "reply"):
            await client.messages.create(
                model="claude-test", max_tokens=8, messages=[{"role": "user", "content": "Hi"}]
            )

    assert (raised.value.status, raised.value.retryable, raised.value.code) == (529, True, "overloaded_error")


def test_other_exceptions_pass_through_unchanged():
    with pytest.raises(KeyError):
        with provider_operation("twilio", "call"):
            raise KeyError("a bug of ours")


def test_provider_errors_survive_pickling_for_celery():
    import pickle

    error = ProviderError("twilio", "buy number", "rate limited", status=429, code=20429, retryable=True)
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.status, copy.code, copy.retryable) == (str(error), 429, 20429, True)
    assert json.dumps({"error": str(copy)})


def test_the_stripe_client_reads_the_proxy_settings_once_and_honours_no_proxy(settings, monkeypatch):
    from jagcall.kernel.providers.clients import stripe_client

    settings.STRIPE_SECRET_KEY = "sk_test_proxycheck"
    monkeypatch.setenv("HTTPS_PROXY", "http://egress.internal:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    settings.PROVIDER_BASE_URLS = {"stripe": "https://stripe-mirror.internal"}
    http_client = stripe_client()._requestor._client
    assert http_client._proxy == {"https": "http://egress.internal:3128"}
    assert http_client._session.trust_env is False  # not walked again on every request
    settings.PROVIDER_BASE_URLS = {"stripe": "http://127.0.0.1:9"}
    assert stripe_client()._requestor._client._proxy is None
