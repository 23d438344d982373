"""The one base for signed inbound webhooks (``/hooks/<provider>/...``).

Contract of ``SignedWebhookView`` (docs/security/webhooks.md):

1. POST only (any other method: 405); CSRF-exempt (the signature is the
   credential); a body over WEBHOOK_MAX_BODY_BYTES: 413.
2. [!!] The signature first, before anything reads the database:
   missing -> 403, invalid -> 403, each with a short plain-text message and
   the ``webhook_refused`` signal (compliance records it, bounded; accounts
   counts it against the client's budget, so a flood ends in 429).
   ``auth_tokens``-style lookups of the key the provider signed with are the
   one read allowed before it. A lookup that fails (the database is down,
   the pool has no connection to give) is no refusal: 503 with Retry-After,
   no signal, so the provider retries and nobody's budget is spent
   (``SigningKeyUnavailable``).
   A signed request that cannot be handled as it is (the sender's bug, not
   an attack: a SID of the wrong shape, a number beyond what its column
   holds, a NUL character) gets 400 with a short plain message naming the
   parameter (``malformed``), before anything else reads the database; it is
   no refusal of the signature (no signal, nothing counted).
3. The organization, from the signed request (``organization_for``); none:
   ``unknown_organization(request)`` (404 unless the subclass answers
   otherwise, e.g. a spoken refusal to a caller).
4. In one ``transaction.atomic()``: the dedupe record (provider, event id)
   and ``handle``. A delivery seen before gets ``duplicate_response`` and
   changes nothing. An exception in ``handle`` (or a 5xx it returns) rolls
   the dedupe record back too, so the provider's retry is processed.
   A value the database cannot store (``DataError``: too long, out of
   range) that ``malformed`` did not catch rolls back like a failure but
   answers 400: the provider's retry would fail the same way.
5. Answer fast: providers time out (Twilio after 15 s, Stripe after 20 s)
   and retry. Slow work goes to a task enqueued with
   ``transaction.on_commit(lambda: some_task.delay(...))`` from the service
   that ``handle`` calls, so it runs only if the delivery was recorded.
6. One structured log line per request on the ``jagcall.webhooks`` logger:
   provider, outcome, event id, status and duration.

Subclasses set ``provider`` and ``signature_header`` and implement
``signature_valid``, ``event_id``, ``organization_for`` and ``handle``
(and, where the request carries values to check, ``malformed``);
they cannot override ``dispatch`` or ``post`` (the order above is the only
path). ``rate_limit_route`` names the per-client budget of refusals in
SENSITIVE_RATE_LIMITS; accounts' rate-limit middleware applies it to every
route whose view derives from this class (accounts/ratelimits.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DataError, transaction
from django.http import HttpRequest, HttpResponse
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from jagcall.kernel.providers.twilio_sids import ACCOUNT, twilio_sid_valid
from jagcall.kernel.webhooks.signals import webhook_refused

logger = logging.getLogger("jagcall.webhooks")


class Outcome:
    HANDLED = "handled"
    DUPLICATE = "duplicate"
    REFUSED_MISSING = "refused_missing"
    REFUSED_INVALID = "refused_invalid"
    UNKNOWN_ORGANIZATION = "unknown_organization"
    TOO_LARGE = "too_large"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    KEY_UNAVAILABLE = "key_unavailable"
    MALFORMED = "malformed"
    ERROR = "error"


# What a 503 for a signing key that cannot be looked up asks the provider to wait before retrying.
KEY_UNAVAILABLE_RETRY_AFTER_SECONDS = 5


class SigningKeyUnavailable(Exception):
    """The key the provider signed with could not be looked up now (e.g. the database is unavailable).

    Raised from ``signature_valid``: the request is neither accepted nor
    refused for its signature; it gets 503 with Retry-After.
    """


def _plain(message: str, status: int) -> HttpResponse:
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


class SignedWebhookView(View):
    """Base of every inbound webhook: signature first, organization, dedupe + handling in one transaction."""

    provider: str = ""
    # The request header that carries the signature; absent or empty means "missing".
    signature_header: str = ""
    # The budget of refusals per client (a key of SENSITIVE_RATE_LIMITS; accounts/ratelimits.py).
    rate_limit_route: str = "hooks"
    # False: events that concern no organization (a platform's own account) reach handle() with None.
    organization_required: bool = True
    http_method_names = ["post"]

    _sealed = ("dispatch", "post", "as_view")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # [!!] The order (size, signature, organization, dedupe + handling) is the only path.
        overridden = [name for name in cls._sealed if name in cls.__dict__]
        if overridden:
            raise TypeError(
                f"{cls.__name__} overrides {overridden}: implement signature_valid, event_id, "
                "organization_for and handle instead (jagcall/kernel/webhooks/views.py)."
            )

    @classmethod
    def as_view(cls, **initkwargs):
        if not cls.provider:
            raise TypeError(f"{cls.__name__} must set `provider`.")
        return csrf_exempt(super().as_view(**initkwargs))

    # --- what a subclass implements -------------------------------------------------------

    def signature_present(self, request: HttpRequest) -> bool:
        return bool(self.signature_header and request.headers.get(self.signature_header))

    def signature_valid(self, request: HttpRequest) -> bool:
        """True only when the request carries a valid signature of ``provider`` over what it says.

        Runs before anything reads the database (but the signing key's
        lookup). ``request.body`` is already read and bounded. Raise
        ``SigningKeyUnavailable`` when the key cannot be looked up; any other
        exception counts as an invalid signature.
        """
        raise NotImplementedError

    def event_id(self, request: HttpRequest) -> str | None:
        """The provider's id of this delivery (the same on its retries); None: no dedupe (handle is idempotent)."""
        raise NotImplementedError

    def organization_for(self, request: HttpRequest):
        """The organization the signed request is about (by a selector), or None."""
        raise NotImplementedError

    def handle(self, request: HttpRequest, organization) -> HttpResponse:
        """Hand the event to a service (fast; slow work on commit); runs in the dedupe record's transaction."""
        raise NotImplementedError

    def malformed(self, request: HttpRequest) -> str | None:
        """What makes this signed request impossible to handle (answered 400 with it), or None.

        Runs once the signature holds, before the organization's lookup: a
        malformed request reads nothing and writes nothing. Name the parameter
        and what it should be ("CallSid is not a Twilio SID (CA and 32 ...").
        """
        return None

    def unknown_organization(self, request: HttpRequest) -> HttpResponse:
        return _plain("No organization here receives this webhook.", 404)

    def duplicate_response(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(status=200)

    def refused_response(self, request: HttpRequest, reason: str) -> HttpResponse:
        what = "missing" if reason == "missing" else "not valid"
        return _plain(f"Refused: the {self.provider} webhook signature is {what}.", 403)

    # --- the one path ----------------------------------------------------------------------

    def dispatch(self, request, *args, **kwargs):
        started = time.monotonic()
        self.outcome, self.received_event_id = Outcome.ERROR, None
        status = 500
        try:
            response = super().dispatch(request, *args, **kwargs)
            status = response.status_code
            return response
        finally:
            duration_ms = round((time.monotonic() - started) * 1000, 1)
            logger.info(
                "webhook %s %s %s (%s ms)",
                self.provider,
                self.outcome,
                status,
                duration_ms,
                extra={
                    "provider": self.provider,
                    "outcome": self.outcome,
                    "event_id": self.received_event_id,
                    "status": status,
                    "duration_ms": duration_ms,
                    "path": request.path[:300],
                },
            )

    def http_method_not_allowed(self, request, *args, **kwargs):
        self.outcome = Outcome.METHOD_NOT_ALLOWED
        return super().http_method_not_allowed(request, *args, **kwargs)

    def post(self, request, *args, **kwargs):
        if self._too_large(request):
            self.outcome = Outcome.TOO_LARGE
            return _plain(f"Refused: the body is larger than {settings.WEBHOOK_MAX_BODY_BYTES} bytes.", 413)

        reason = self._signature_problem(request)
        if reason == "unavailable":
            # Our failure, not the sender's: no refusal is recorded or counted, the provider retries.
            self.outcome = Outcome.KEY_UNAVAILABLE
            response = _plain("The webhook cannot be checked right now; retry later.", 503)
            response["Retry-After"] = str(KEY_UNAVAILABLE_RETRY_AFTER_SECONDS)
            return response
        if reason is not None:
            self.outcome = Outcome.REFUSED_MISSING if reason == "missing" else Outcome.REFUSED_INVALID
            webhook_refused.send(
                sender=type(self),
                provider=self.provider,
                reason=reason,
                path=request.path[:300],
                remote_addr=request.META.get("REMOTE_ADDR"),
                request_id=getattr(request, "request_id", None),
                request=request,
            )
            return self.refused_response(request, reason)

        problem = self.malformed(request)
        if problem:
            # The sender's bug, not a forgery: no refusal is recorded or counted.
            self.outcome = Outcome.MALFORMED
            return _plain(f"Bad request: {problem}", 400)

        organization = self.organization_for(request)
        if organization is None and self.organization_required:
            self.outcome = Outcome.UNKNOWN_ORGANIZATION
            return self.unknown_organization(request)

        event_id = self.event_id(request)
        self.received_event_id = event_id
        from jagcall.kernel.webhooks.services import received_webhook_record

        try:
            with transaction.atomic():
                if event_id and not received_webhook_record(
                    provider=self.provider, event_id=str(event_id), organization_id=getattr(organization, "pk", None)
                ):
                    self.outcome = Outcome.DUPLICATE
                    return self.duplicate_response(request)
                response = self.handle(request, organization)
                if response.status_code >= 500:
                    # The handler failed without raising: forget the delivery so the provider's retry is processed.
                    transaction.set_rollback(True)
                    return response
        except DataError:
            # A value the columns cannot hold (rolled back whole): retrying the same request cannot succeed.
            logger.warning("webhook %s: a value of the request does not fit its column", self.provider, exc_info=True)
            self.outcome = Outcome.MALFORMED
            return _plain("Bad request: a value is too long or out of range.", 400)
        self.outcome = Outcome.HANDLED
        return response

    # --- helpers ------------------------------------------------------------------------------

    def _too_large(self, request) -> bool:
        limit = int(settings.WEBHOOK_MAX_BODY_BYTES)
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            return True
        try:
            return len(request.body) > limit
        except RequestDataTooBig:  # over Django's own DATA_UPLOAD_MAX_MEMORY_SIZE
            return True

    def _signature_problem(self, request) -> str | None:
        """None when the signature is valid; else "missing", "invalid" or "unavailable" (the key's lookup failed)."""
        if not self.signature_present(request):
            return "missing"
        try:
            valid = self.signature_valid(request)
        except SigningKeyUnavailable:
            logger.error("webhook %s: the signing key could not be looked up; answering 503", self.provider,
                         exc_info=True)  # fmt: skip
            return "unavailable"
        except Exception:  # [!!] fail closed: a request the check cannot read is not signed
            logger.warning("webhook %s: signature check raised; refusing", self.provider, exc_info=True)
            valid = False
        return None if valid is True else "invalid"


class TwilioWebhookView(SignedWebhookView):
    """Twilio's webhooks: ``X-Twilio-Signature`` over the public URL and the POST form (HMAC-SHA1).

    - The URL is the one Twilio requested: PUBLIC_BASE_URL + path and query
      (behind a proxy the server's own idea of its host and scheme differs).
      Without PUBLIC_BASE_URL, the request's absolute URI.
    - Signed with the auth token of the account the call or message belongs
      to: ``auth_tokens(request)`` lists the candidates (a subclass looks up
      the account's token by ``AccountSid``; default: the platform's
      TWILIO_AUTH_TOKEN). Two tokens while one is being rotated.
    - JSON bodies (a ``bodySHA256`` in the signed query): the raw body's hash.
    - Event id: Twilio's ``I-Twilio-Idempotency-Token`` header (the same on
      its retries), else ``twilio_event_id(request)``.
    - Malformed (400, once signed): a form value with a NUL character; a
      parameter of ``sid_params`` that is not a SID of its kind
      (jagcall/kernel/providers/twilio_sids.py); a parameter of
      ``int_params`` or ``decimal_params`` that is not a number within what
      the column it is stored in holds. Absent or empty parameters pass.
    """

    provider = "twilio"
    signature_header = "X-Twilio-Signature"
    idempotency_header = "I-Twilio-Idempotency-Token"
    # Form parameter -> the SID prefix its value must carry.
    sid_params: Mapping[str, str] = {"AccountSid": ACCOUNT}
    # Form parameter -> (lowest, highest) whole number it may be.
    int_params: Mapping[str, tuple[int, int]] = {}
    # Form parameter -> (max_digits, decimal_places) of the DecimalField it is stored in (as its absolute value).
    decimal_params: Mapping[str, tuple[int, int]] = {}

    def auth_tokens(self, request: HttpRequest) -> list[str]:
        token = getattr(settings, "TWILIO_AUTH_TOKEN", "")
        return [token] if token else []

    def signed_url(self, request: HttpRequest) -> str:
        base = getattr(settings, "PUBLIC_BASE_URL", "")
        if base:
            return base.rstrip("/") + request.get_full_path()
        return request.build_absolute_uri()

    def signature_valid(self, request: HttpRequest) -> bool:
        from twilio.request_validator import RequestValidator

        signature = request.headers.get(self.signature_header, "")
        try:
            tokens = [t for t in self.auth_tokens(request) if t]
        except Exception as exc:
            raise SigningKeyUnavailable(f"the auth token of {request.path[:300]} could not be looked up") from exc
        if not tokens:
            logger.warning("twilio webhook: no auth token to check %s against; refusing", request.path[:300])
            return False
        url = self.signed_url(request)
        params = request.body.decode("utf-8") if "bodySHA256" in request.GET else request.POST
        return any(RequestValidator(token).validate(url, params, signature) for token in tokens)

    def malformed(self, request: HttpRequest) -> str | None:
        form = request.POST
        for name, values in form.lists():
            if "\x00" in name or any("\x00" in value for value in values):
                return f"the parameter {_shown(name)} contains a NUL character."
        for name, prefix in self.sid_params.items():
            value = form.get(name)
            if value and not twilio_sid_valid(value, prefix):
                return f"{name} is not a Twilio SID ({prefix} and 32 lowercase hexadecimal digits)."
        for name, (lowest, highest) in self.int_params.items():
            value = form.get(name)
            if not value:
                continue
            try:
                number = int(value.strip())
            except ValueError:
                return f"{name} is not a whole number."
            if not lowest <= number <= highest:
                return f"{name} must be between {lowest} and {highest}."
        for name, (digits, places) in self.decimal_params.items():
            value = form.get(name)
            if value and not _decimal_fits(value, digits, places):
                limit = "9" * (digits - places) + "." + "9" * places
                return f"{name} is not an amount between -{limit} and {limit}."
        return None

    def event_id(self, request: HttpRequest) -> str | None:
        return request.headers.get(self.idempotency_header) or self.twilio_event_id(request)

    def twilio_event_id(self, request: HttpRequest) -> str | None:
        """An id for deliveries without Twilio's idempotency header (e.g. CallSid + CallStatus); None: no dedupe."""
        return None


def _shown(name: str) -> str:
    """A parameter's name as a plain message may show it."""
    return repr(name.replace("\x00", "\\0")[:40])


def _decimal_fits(value: str, digits: int, places: int) -> bool:
    """True when ``value`` is a finite amount whose absolute value, at ``places`` decimals, fits ``digits`` digits."""
    try:
        amount = Decimal(value.strip())
    except (InvalidOperation, ValueError):
        return False
    if not amount.is_finite():
        return False
    if amount and amount.adjusted() >= digits - places:  # by its exponent: arithmetic on 1e999999999 overflows
        return False
    return abs(amount).quantize(Decimal(1).scaleb(-places)) < Decimal(10) ** (digits - places)
