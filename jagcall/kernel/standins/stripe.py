"""A stand-in for Stripe Billing, spoken to by the real ``stripe`` SDK (``StripeClient``, v1 services)
over Stripe's own wire format: form-encoded requests in bracket notation (``line_items[0][price]``,
``metadata[org]``, ``expand[]``; ``parse_params``), ``Authorization: Bearer <secret key>`` (or Basic),
JSON objects shaped like Stripe's, Stripe's error shape (401 for a bad key, 404 ``resource_missing``
for an unknown id, 400 ``parameter_unknown`` for a parameter Stripe would not take), list objects
with ``limit``/``starting_after``/``ending_before`` pages, ``expand``, and ``Idempotency-Key``
honoured on POST: the same key and parameters get the same (successful) reply back, marked
``Idempotent-Replayed: true``, so a retried write is applied once.

Endpoints (under /v1/): products and prices (lookup keys, metered prices backed by a meter),
customers, checkout sessions, billing portal sessions, subscriptions (update with prorations,
cancel), invoices (and ``create_preview`` with proration lines), billing meters and their event
summaries, meter events (deduplicated on ``identifier``), events.

Hosted pages under /stand-in/: the checkout page of a session (its ``url``), the customer portal
(a portal session's ``url``) and an invoice's ``hosted_invoice_url``. [!!] They never ask for a
card: every card is typed on Stripe's own pages only, so no page of ours may grow a card field.

Webhooks: every change is recorded in ``events`` (Stripe's event shape). Events of the types in
``webhook_events`` (the endpoint's enabled events; None for all) are posted to ``webhook_url``,
signed as Stripe signs them (``Stripe-Signature: t=...,v1=HMAC-SHA256(secret, "t.body")``, which
``stripe.Webhook.construct_event`` checks): synchronously, before answering, for what a person does
on the hosted pages and for the test helpers (``complete_checkout``, ``set_subscription_status``,
``fail_payment``, ``pay_invoice``); in the background, in order, for changes made through the API
(as Stripe does: the application may be holding a transaction around its API call;
``flush_deliveries()`` waits for them). Each attempt is kept in ``deliveries``.

What it does not do: charge, tax, discount, renew periods by itself, or schedule retries of
failed payments; a subscription changes state through the API, the hosted pages or the helpers.
"""

from __future__ import annotations

import base64
import calendar
import copy
import hashlib
import hmac
import html
import json
import queue
import re
import secrets
import string
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from jagcall.kernel.standins.base import RecordedRequest, Reply, StandIn, json_reply

API_VERSION = "2026-10-28.endive"
BASE62 = string.ascii_letters + string.digits
INTERVALS = ("day", "week", "month", "year")
INTERVAL_SECONDS = {"day": 86400, "week": 7 * 86400}
METER_EVENT_PAST_SECONDS = 35 * 86400  # Stripe takes meter events from the past 35 days...
METER_EVENT_FUTURE_SECONDS = 5 * 60  # ...up to 5 minutes ahead
IDEMPOTENCY_KEYS_KEPT = 10_000
DELIVERY_TIMEOUT_SECONDS = 10
# The events a billing webhook endpoint is typically enabled for; the others are only recorded.
DEFAULT_WEBHOOK_EVENTS = frozenset({
    "checkout.session.completed", "checkout.session.expired",
    "customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
    "invoice.paid", "invoice.payment_failed",
})  # fmt: skip
SUBSCRIPTION_STATUSES = ("trialing", "active", "past_due", "unpaid", "canceled", "incomplete",
                         "incomplete_expired", "paused")  # fmt: skip
CURRENCY_SIGNS = {"usd": "$", "eur": "€", "gbp": "£", "cad": "CA$", "aud": "A$"}
ERROR_TYPES = {402: "card_error", 429: "rate_limit_error"}
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class StripeStandInError(Exception):
    """A request Stripe would refuse: the HTTP status and Stripe's error fields."""

    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None,
                 type: str = "invalid_request_error") -> None:  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.type = status, message, code, param, type


def _refuse(message: str, *, param: str | None = None, code: str | None = None, status: int = 400):
    return StripeStandInError(status, message, code=code, param=param)


def _missing(kind: str, id: str, param: str | None = "id", status: int = 404) -> StripeStandInError:
    return StripeStandInError(status, f"No such {kind}: '{id}'", code="resource_missing", param=param)


def _required(param: str) -> StripeStandInError:
    return _refuse(f"Missing required param: {param}.", param=param, code="parameter_missing")


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(BASE62) for _ in range(length))


def _now() -> int:
    return int(time.time())


def _copy(obj):
    return copy.deepcopy(obj)


# -- Stripe's form encoding ------------------------------------------------------------------------

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_KEEP_AS_DICT = frozenset({"metadata", "payload"})  # free-form maps: "0" there is a key, not an index


def parse_params(fields: dict[str, list[str]]) -> dict[str, Any]:
    """Stripe's bracket notation (``a[b][0][c]=v``, ``a[]=v``, as parse_qs gives it) as nested dicts
    and lists: ``{"a": {"b": [{"c": "v"}]}}``. Values stay strings; a repeated plain key keeps its last."""
    root: dict[str, Any] = {}
    for key, values in fields.items():
        match = _KEY.match(key)
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))] if match else [key]
        for value in values:
            node = root
            for n, part in enumerate(parts):
                if part == "":  # "[]": the next index
                    part = str(len(node))
                if n == len(parts) - 1:
                    node[part] = value
                else:
                    if not isinstance(node.get(part), dict):
                        node[part] = {}
                    node = node[part]
    return _listify(root)


def _listify(node: Any, key: str = "") -> Any:
    if not isinstance(node, dict):
        return node
    children = {k: _listify(v, k) for k, v in node.items()}
    if children and key not in _KEEP_AS_DICT and all(k.isdigit() for k in children):
        return [children[k] for k in sorted(children, key=int)]
    return children


def _only(params: dict, allowed: set[str] | frozenset[str], prefix: str = "") -> None:
    for key in params:
        if key not in allowed and key != "expand":
            name = f"{prefix}[{key}]" if prefix else key
            raise _refuse(f"Received unknown parameter: {name}", param=name, code="parameter_unknown")


def _int(value: Any, param: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise _refuse(f"Invalid integer: {value}", param=param, code="parameter_invalid_integer") from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise _refuse(f"Invalid value for {param}: {number} is out of range.", param=param)
    return number


def _bool(value: Any, param: str) -> bool:
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise _refuse(f"Invalid boolean: {value}", param=param, code="parameter_invalid_boolean")


def _dict(params: dict, name: str, prefix: str = "") -> dict:
    value = params.get(name)
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise _refuse(f"Invalid object: {prefix or name}", param=prefix or name)
    return value


def _list(params: dict, name: str) -> list:
    value = params.get(name)
    if value in (None, ""):
        return []
    if isinstance(value, dict):  # "a[x]=..." where an array was meant
        raise _refuse(f"Invalid array: {name}", param=name)
    return value if isinstance(value, list) else [value]


def _one_of(value: str, choices: tuple[str, ...] | frozenset[str], param: str) -> str:
    if value not in choices:
        raise _refuse(f"Invalid {param}: must be one of {', '.join(choices)}", param=param, code="parameter_invalid")
    return value


def _metadata(params: dict, old: dict | None = None, param: str = "metadata") -> dict:
    """Stripe's metadata update: keys merge into ``old``, an empty value removes its key, and
    ``metadata=""`` clears them all."""
    if params.get(param) == "":
        return {}
    result = dict(old or {})
    for key, value in _dict(params, param).items():
        if not isinstance(value, str):
            raise _refuse(f"Invalid value for metadata[{key}]: a string is expected.", param=f"{param}[{key}]")
        if value == "":
            result.pop(key, None)
        else:
            result[key] = value
    return result


# -- time and money --------------------------------------------------------------------------------


def add_interval(timestamp: int, interval: str, count: int = 1) -> int:
    """``timestamp`` moved on by ``count`` intervals, months in calendar months (Jan 31 + 1 month = Feb 28/29)."""
    if interval in INTERVAL_SECONDS:
        return timestamp + INTERVAL_SECONDS[interval] * count
    moment = datetime.fromtimestamp(timestamp, UTC)
    months = moment.month - 1 + count * (12 if interval == "year" else 1)
    year, month = moment.year + months // 12, months % 12 + 1
    moment = moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))
    return int(moment.timestamp())


def _day(timestamp: int) -> str:
    return time.strftime("%d %b %Y", time.gmtime(timestamp))


def _cents(value: Decimal) -> int:
    """Whole cents, halves away from zero (as Stripe rounds prorations)."""
    rounded = abs(value).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(rounded) if value >= 0 else -int(rounded)


def money(amount: int | Decimal, currency: str) -> str:
    value = Decimal(amount) / 100
    sign = CURRENCY_SIGNS.get(currency.lower())
    text = f"{abs(value):,.2f}".removesuffix(".00") if value == value.to_integral() else f"{abs(value):,.2f}"
    text = f"{sign}{text}" if sign else f"{text} {currency.upper()}"
    return f"-{text}" if value < 0 else text


def _unit(price: dict) -> Decimal:
    """The per-unit amount in cents; for a tiered price, the last tier's (what a unit beyond the tiers costs)."""
    if price.get("tiers"):
        return Decimal(price["tiers"][-1]["unit_amount_decimal"])
    return Decimal(price["unit_amount_decimal"])


def _amount(price: dict, quantity: Decimal) -> Decimal:
    """What ``quantity`` units cost, in cents: per unit, or across graduated tiers (each tier's units at its rate)."""
    if not price.get("tiers"):
        return _unit(price) * quantity
    total, below = Decimal(0), Decimal(0)
    for tier in price["tiers"]:
        ceiling = Decimal(tier["up_to"]) if tier["up_to"] is not None else None
        in_tier = quantity - below if ceiling is None else min(quantity, ceiling) - below
        if in_tier <= 0:
            break
        total += Decimal(tier["unit_amount_decimal"]) * in_tier + Decimal(tier["flat_amount"] or 0)
        if ceiling is None:
            break
        below = ceiling
    return total


def _tiers(params: dict) -> list[dict]:
    """Graduated tiers as Stripe takes them: ascending ``up_to``, the last ``inf``, one amount each."""
    given = params.get("tiers")
    if not isinstance(given, list) or not given:
        raise _refuse("Tiered prices need tiers.", param="tiers", code="parameter_missing")
    tiers, previous = [], 0
    for index, tier in enumerate(given):
        name = f"tiers[{index}]"
        if not isinstance(tier, dict):
            raise _refuse(f"Invalid object: {name}", param=name)
        _only(tier, {"up_to", "unit_amount", "unit_amount_decimal", "flat_amount"}, name)
        last = index == len(given) - 1
        if str(tier.get("up_to", "")) == "inf":
            if not last:
                raise _refuse("Only the last tier can be up_to=inf.", param=f"{name}[up_to]")
            up_to = None
        else:
            if last:
                raise _refuse("The last tier must be up_to=inf.", param=f"{name}[up_to]")
            up_to = _int(tier.get("up_to"), f"{name}[up_to]", minimum=previous + 1)
            previous = up_to
        if "unit_amount" in tier:
            decimal = str(_int(tier["unit_amount"], f"{name}[unit_amount]", minimum=0))
        elif "unit_amount_decimal" in tier:
            try:
                value = Decimal(str(tier["unit_amount_decimal"]))
            except InvalidOperation:
                raise _refuse(f"Invalid decimal: {name}[unit_amount_decimal]", param=f"{name}[unit_amount_decimal]") from None
            if not value.is_finite() or value < 0:
                raise _refuse(f"Invalid decimal: {name}[unit_amount_decimal]", param=f"{name}[unit_amount_decimal]")
            decimal = format(value.normalize(), "f")
        else:
            decimal = "0"
        flat = _int(tier["flat_amount"], f"{name}[flat_amount]", minimum=0) if "flat_amount" in tier else None
        amount = int(Decimal(decimal)) if Decimal(decimal) == Decimal(decimal).to_integral() else None
        tiers.append({"flat_amount": flat, "flat_amount_decimal": None if flat is None else str(flat),
                      "unit_amount": amount, "unit_amount_decimal": decimal, "up_to": up_to})  # fmt: skip
    return tiers


def _licensed(price: dict | None) -> bool:
    return bool(price and price.get("recurring") and price["recurring"]["usage_type"] == "licensed")


def _metered(price: dict | None) -> bool:
    return bool(price and price.get("recurring") and price["recurring"]["usage_type"] == "metered")


def _per(price: dict) -> str:
    recurring = price["recurring"]
    count = recurring["interval_count"]
    return recurring["interval"] if count == 1 else f"{count} {recurring['interval']}s"


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


# -- the stand-in ---------------------------------------------------------------------------------


class StripeStandIn(StandIn):
    """Stripe Billing on 127.0.0.1; stores are dicts of Stripe objects by id, guarded by ``_lock``."""

    name = "stripe"

    def __init__(self, api_key: str | None = None, webhook_secret: str | None = None) -> None:
        super().__init__()
        self.api_key = api_key or "sk_test_" + new_id("", 40)
        self.webhook_secret = webhook_secret or "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        self.webhook_url: str | None = None  # None: events are recorded, not delivered
        self.webhook_events: frozenset[str] | None = DEFAULT_WEBHOOK_EVENTS  # None: every type
        self.events: list[dict] = []  # every event created, newest last
        self.deliveries: list[tuple[str, int | str]] = []  # (event id, HTTP status or what went wrong)
        self.products: dict[str, dict] = {}
        self.prices: dict[str, dict] = {}
        self.customers: dict[str, dict] = {}  # a deleted one: {"id", "object", "deleted": True}
        self.checkout_sessions: dict[str, dict] = {}
        self.portal_sessions: dict[str, dict] = {}
        self.subscriptions: dict[str, dict] = {}
        self.invoices: dict[str, dict] = {}
        self.meters: dict[str, dict] = {}
        self.meter_events: list[dict] = []  # accepted meter events (billing.meter_event objects)
        self.balance_transactions: dict[str, list[dict]] = {}  # customer id -> its balance changes, oldest first
        self.duplicate_meter_events = 0  # repeats of an identifier, refused (never counted twice)
        self.portal_configuration = new_id("bpc_")
        self._events_by_id: dict[str, dict] = {}
        self._session_items: dict[str, list[tuple[str, int | None]]] = {}  # cs id -> (price id, quantity)
        self._session_data: dict[str, dict] = {}  # cs id -> its subscription_data, applied on completion
        self._pending_lines: dict[str, list[dict]] = {}  # sub id -> prorations for its next invoice
        self._invoice_counts: dict[str, int] = {}
        self._identifiers: dict[str, int] = {}  # meter event identifier -> when it was accepted
        self._idempotent: OrderedDict[tuple[str, str], tuple[str, Reply]] = OrderedDict()
        self._in_flight: set[tuple[str, str]] = set()
        self._context = threading.local()  # the API request being answered (for events' "request")
        self._outbox: queue.Queue = queue.Queue()
        self._courier: threading.Thread | None = None

    def stop(self) -> None:
        self.flush_deliveries(timeout=5)
        if self._courier is not None:
            self._outbox.put(None)
            self._courier.join(timeout=5)
            self._courier = None
        super().stop()

    def error_reply(self, status: int, message: str, *, code: str | None = None, param: str | None = None,
                    type: str | None = None) -> Reply:  # fmt: skip
        kind = type or ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
        error = {"type": kind, "message": message}
        if code:
            error["code"] = code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        if param:
            error["param"] = param
        return json_reply({"error": error}, status=status, headers={"Request-Id": new_id("req_", 14)})

    # -- dispatch ----------------------------------------------------------------------------
    ROUTES = (
        ("POST", r"/v1/products", "_product_create"),
        ("GET", r"/v1/products", "_product_list"),
        ("GET", r"/v1/products/(?P<id>[^/]+)", "_product_retrieve"),
        ("POST", r"/v1/products/(?P<id>[^/]+)", "_product_update"),
        ("POST", r"/v1/prices", "_price_create"),
        ("GET", r"/v1/prices", "_price_list"),
        ("GET", r"/v1/prices/(?P<id>[^/]+)", "_price_retrieve"),
        ("POST", r"/v1/prices/(?P<id>[^/]+)", "_price_update"),
        ("POST", r"/v1/customers", "_customer_create"),
        ("GET", r"/v1/customers", "_customer_list"),
        ("GET", r"/v1/customers/(?P<id>[^/]+)", "_customer_retrieve"),
        ("POST", r"/v1/customers/(?P<id>[^/]+)", "_customer_update"),
        ("DELETE", r"/v1/customers/(?P<id>[^/]+)", "_customer_delete"),
        ("POST", r"/v1/customers/(?P<id>[^/]+)/balance_transactions", "_balance_create"),
        ("GET", r"/v1/customers/(?P<id>[^/]+)/balance_transactions", "_balance_list"),
        ("POST", r"/v1/checkout/sessions", "_checkout_create"),
        ("GET", r"/v1/checkout/sessions", "_checkout_list"),
        ("GET", r"/v1/checkout/sessions/(?P<id>[^/]+)", "_checkout_retrieve"),
        ("GET", r"/v1/checkout/sessions/(?P<id>[^/]+)/line_items", "_checkout_line_items"),
        ("POST", r"/v1/checkout/sessions/(?P<id>[^/]+)/expire", "_checkout_expire"),
        ("POST", r"/v1/billing_portal/sessions", "_portal_create"),
        ("GET", r"/v1/subscriptions", "_subscription_list"),
        ("GET", r"/v1/subscriptions/(?P<id>[^/]+)", "_subscription_retrieve"),
        ("POST", r"/v1/subscriptions/(?P<id>[^/]+)", "_subscription_update"),
        ("DELETE", r"/v1/subscriptions/(?P<id>[^/]+)", "_subscription_cancel"),
        ("GET", r"/v1/invoices", "_invoice_list"),
        ("POST", r"/v1/invoices/create_preview", "_invoice_preview"),
        ("GET", r"/v1/invoices/(?P<id>[^/]+)", "_invoice_retrieve"),
        ("POST", r"/v1/billing/meters", "_meter_create"),
        ("GET", r"/v1/billing/meters", "_meter_list"),
        ("GET", r"/v1/billing/meters/(?P<id>[^/]+)", "_meter_retrieve"),
        ("GET", r"/v1/billing/meters/(?P<id>[^/]+)/event_summaries", "_meter_summaries"),
        ("POST", r"/v1/billing/meter_events", "_meter_event_create"),
        ("GET", r"/v1/events", "_event_list"),
        ("GET", r"/v1/events/(?P<id>[^/]+)", "_event_retrieve"),
    )

    def handle(self, request: RecordedRequest) -> Reply:
        if request.path.startswith("/stand-in/"):
            return self._hosted(request)
        key = self._key_of(request)
        if not key:
            message = ("You did not provide an API key. You need to provide your API key in the Authorization "
                       "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').")  # fmt: skip
            return self.error_reply(401, message)
        if not secrets.compare_digest(key.encode(), self.api_key.encode()):
            shown = key[:8] + "*" * max(len(key) - 12, 0) + key[-4:] if len(key) > 12 else "*" * len(key)
            return self.error_reply(401, f"Invalid API Key provided: {shown}")
        for method, pattern, name in self.ROUTES:
            match = re.fullmatch(pattern, request.path)
            if match and method == request.method:
                break
        else:
            return self.error_reply(404, f"Unrecognized request URL ({request.method}: {request.path}).")
        fields = request.form_lists if request.method == "POST" else request.query_lists
        try:
            params = parse_params(fields)
        except (TypeError, AttributeError):  # "a=1&a[b]=2": one name used as a value and an object
            return self.error_reply(400, "Invalid request: conflicting parameters.")
        idempotency_key = request.header("idempotency-key") if request.method == "POST" else ""
        if not idempotency_key:
            return self._answer(name, params, match.groupdict(), None)
        scope = (key, idempotency_key)
        fingerprint = json.dumps([request.path, params], sort_keys=True)
        with self._lock:
            kept = self._idempotent.get(scope)
            if kept is not None and kept[0] != fingerprint:
                message = ("Keys for idempotent requests can only be used with the same parameters they were first "
                           f"used with. Try using a key other than '{idempotency_key}' if you meant to execute a "
                           "different request.")  # fmt: skip
                return self.error_reply(400, message, type="idempotency_error")
            if kept is not None:
                reply = kept[1]
                headers = {**reply.headers, "Idempotent-Replayed": "true"}
                return Reply(reply.status, reply.body, reply.content_type, headers)
            if scope in self._in_flight:
                message = ("There is currently another in-progress request using this Idempotent Key (that probably "
                           "means you submitted twice, and the other request is still going through): "
                           f"{idempotency_key}. Please try again later.")  # fmt: skip
                return self.error_reply(409, message, type="idempotency_error")
            self._in_flight.add(scope)
        reply = None
        try:
            reply = self._answer(name, params, match.groupdict(), idempotency_key)
            return reply
        finally:
            with self._lock:
                self._in_flight.discard(scope)
                if reply is not None and 200 <= reply.status < 300:  # a refused request may be corrected and retried
                    self._idempotent[scope] = (fingerprint, reply)
                    while len(self._idempotent) > IDEMPOTENCY_KEYS_KEPT:
                        self._idempotent.popitem(last=False)

    @staticmethod
    def _key_of(request: RecordedRequest) -> str:
        scheme, _, credential = request.header("authorization").partition(" ")
        if scheme.lower() == "bearer":
            return credential.strip()
        if scheme.lower() == "basic":
            try:
                return base64.b64decode(credential.strip()).decode().partition(":")[0]
            except (ValueError, UnicodeDecodeError):
                return ""
        return ""

    def _answer(self, name: str, params: dict, ids: dict, idempotency_key: str | None) -> Reply:
        request_id = new_id("req_", 14)
        self._context.request = {"id": request_id, "idempotency_key": idempotency_key}
        try:
            with self._lock:
                result = getattr(self, name)(params, **ids)
                result = self._expanded(_copy(result), _list(params, "expand"))
        except StripeStandInError as error:
            return self.error_reply(error.status, error.message, code=error.code, param=error.param, type=error.type)
        finally:
            self._context.request = None
        return json_reply(result, headers={"Request-Id": request_id, "Stripe-Version": API_VERSION})

    # -- lookups -----------------------------------------------------------------------------
    def _product(self, id: str, param: str | None = "id", status: int = 404) -> dict:
        found = self.products.get(str(id))
        if found is None:
            raise _missing("product", id, param, status)
        return found

    def _price(self, id: str, param: str | None = "id", status: int = 404) -> dict:
        found = self.prices.get(str(id))
        if found is None:
            raise _missing("price", id, param, status)
        return found

    def _customer(self, id: str, param: str | None = "id", status: int = 404) -> dict:
        found = self.customers.get(str(id))
        if found is None or found.get("deleted"):
            raise _missing("customer", id, param, status)
        return found

    def _subscription(self, id: str, param: str | None = "id", status: int = 404) -> dict:
        found = self.subscriptions.get(str(id))
        if found is None:
            raise _missing("subscription", id, param, status)
        return found

    def _invoice(self, id: str, param: str | None = "id", status: int = 404) -> dict:
        found = self.invoices.get(str(id))
        if found is None:
            raise _missing("invoice", id, param, status)
        return found

    def _session(self, id: str, param: str | None = "id", status: int = 404) -> dict:
        found = self.checkout_sessions.get(str(id))
        if found is None:
            raise _missing("checkout.session", id, param, status)
        return found

    def _meter(self, id: str, param: str | None = "id", status: int = 404) -> dict:
        found = self.meters.get(str(id))
        if found is None:
            raise _missing("billing.meter", id, param, status)
        return found

    def _lookup(self, id: str) -> dict | None:
        for store in (self.customers, self.products, self.prices, self.subscriptions, self.invoices,
                      self.checkout_sessions, self.portal_sessions, self.meters, self._events_by_id):  # fmt: skip
            if id in store:
                return store[id]
        return None

    def _expanded(self, obj: dict, paths: list) -> dict:
        for path in paths:
            if not isinstance(path, str) or path.count(".") > 3:
                raise _refuse(f"You cannot expand more than 4 levels of a property ({path}).", param="expand")
            self._expand(obj, path.split("."), path)
        return obj

    def _expand(self, node: Any, parts: list[str], path: str) -> None:
        if not parts or node is None:
            return
        if isinstance(node, list):
            for each in node:
                self._expand(each, parts, path)
            return
        head, rest = parts[0], parts[1:]
        if isinstance(node, dict) and head == "line_items" and node.get("object") == "checkout.session":
            node["line_items"] = self._session_line_items(node["id"])
        elif not isinstance(node, dict) or head not in node:
            raise _refuse(f"This property cannot be expanded ({path}).", param="expand")
        value = node[head]
        if isinstance(value, str):
            found = self._lookup(value)
            if found is None:
                raise _refuse(f"This property cannot be expanded ({path}).", param="expand")
            node[head] = value = _copy(found)
        self._expand(value, rest, path)

    def _page(self, items: list[dict], params: dict, url: str) -> dict:
        """A list object of ``items`` (oldest first in the store), newest first as Stripe lists."""
        items = list(reversed(items))
        limit = _int(params.get("limit", 10), "limit", minimum=1, maximum=100)
        after, before = params.get("starting_after"), params.get("ending_before")
        ids = [item["id"] for item in items]
        if after:
            if after not in ids:
                raise _missing("object", after, "starting_after", 400)
            items = items[ids.index(after) + 1 :]
        elif before:
            if before not in ids:
                raise _missing("object", before, "ending_before", 400)
            items = items[: ids.index(before)]
            page = items[-limit:]
            return {"object": "list", "data": _copy(page), "has_more": len(items) > limit, "url": url}
        return {"object": "list", "data": _copy(items[:limit]), "has_more": len(items) > limit, "url": url}

    LIST = frozenset({"limit", "starting_after", "ending_before"})

    # -- events and webhooks -----------------------------------------------------------------
    def make_event(self, type: str, obj: dict, previous: dict | None = None) -> dict:
        """Record an event of ``type`` about ``obj`` (a snapshot), in Stripe's event shape."""
        data: dict[str, Any] = {"object": _copy(obj)}
        if previous:
            data["previous_attributes"] = _copy(previous)
        request = getattr(self._context, "request", None) or {"id": None, "idempotency_key": None}
        event = {
            "id": new_id("evt_"), "object": "event", "api_version": API_VERSION, "created": _now(), "data": data,
            "livemode": False, "pending_webhooks": 1 if self._subscribed(type) else 0, "request": dict(request),
            "type": type,
        }  # fmt: skip
        with self._lock:
            self.events.append(event)
            self._events_by_id[event["id"]] = event
        return event

    def _subscribed(self, type: str) -> bool:
        return bool(self.webhook_url) and (self.webhook_events is None or type in self.webhook_events)

    def deliver(self, event: dict) -> int | str | None:
        """Post ``event`` to ``webhook_url``, signed; the HTTP status, or what went wrong (never raises).
        None when there is no webhook URL."""
        url = self.webhook_url
        if not url:
            return None
        body = json.dumps(event, indent=2).encode()
        timestamp = _now()
        signature = hmac.new(self.webhook_secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
        headers = {
            "Content-Type": "application/json; charset=utf-8", "User-Agent": "Stripe/1.0 (stand-in)",
            "Stripe-Signature": f"t={timestamp},v1={signature.hexdigest()}",
        }  # fmt: skip
        outcome: int | str
        try:
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            with _NO_PROXY.open(request, timeout=DELIVERY_TIMEOUT_SECONDS) as response:
                outcome = response.status
        except urllib.error.HTTPError as error:
            outcome = error.code
        except Exception as error:  # noqa: BLE001 - a delivery that fails is recorded, as Stripe's dashboard shows it
            outcome = f"{type(error).__name__}: {error}"
        with self._lock:
            self.deliveries.append((event["id"], outcome))
        return outcome

    def _deliver_now(self, events: list[dict]) -> None:
        """Deliver these, in order, in this thread. [!!] Never with ``_lock`` held: the application's
        webhook handler may call this stand-in back, from another thread."""
        for event in events:
            if self._subscribed(event["type"]):
                self.deliver(event)

    def _emit(self, type: str, obj: dict, previous: dict | None = None) -> dict:
        """Record an event of a change made through the API; deliver it in the background, in order."""
        event = self.make_event(type, obj, previous)
        if self._subscribed(type):
            self._outbox.put(event)
            if self._courier is None:
                self._courier = threading.Thread(target=self._carry, name="stripe-webhooks", daemon=True)
                self._courier.start()
        return event

    def _carry(self) -> None:
        while True:
            event = self._outbox.get()
            try:
                if event is None:
                    return
                self.deliver(event)
            finally:
                self._outbox.task_done()

    def flush_deliveries(self, timeout: float = 10.0) -> bool:
        """Wait until the background deliveries are done; False if some were still going at ``timeout``."""
        deadline = time.monotonic() + timeout
        while self._outbox.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    @staticmethod
    def _changes(before: dict, after: dict) -> dict:
        return {key: value for key, value in before.items() if after.get(key) != value}

    # -- products and prices -----------------------------------------------------------------
    def _product_create(self, params: dict) -> dict:
        _only(params, {"id", "name", "active", "description", "metadata", "images", "url", "tax_code",
                       "statement_descriptor", "unit_label", "shippable"})  # fmt: skip
        if not params.get("name"):
            raise _required("name")
        id = params.get("id") or new_id("prod_", 14)
        if id in self.products:
            raise _refuse("Product already exists.", param="id", code="resource_already_exists")
        now = _now()
        product = {
            "id": id, "object": "product", "active": _bool(params.get("active", "true"), "active"),
            "attributes": [], "created": now, "default_price": None, "description": params.get("description") or None,
            "images": _list(params, "images"), "livemode": False, "marketing_features": [],
            "metadata": _metadata(params), "name": params["name"], "package_dimensions": None, "shippable": None,
            "statement_descriptor": params.get("statement_descriptor") or None, "tax_code": params.get("tax_code"),
            "type": "service", "unit_label": params.get("unit_label") or None, "updated": now,
            "url": params.get("url") or None,
        }  # fmt: skip
        self.products[id] = product
        self.make_event("product.created", product)
        return product

    def _product_list(self, params: dict) -> dict:
        _only(params, self.LIST | {"active"})
        items = list(self.products.values())
        if "active" in params:
            active = _bool(params["active"], "active")
            items = [p for p in items if p["active"] == active]
        return self._page(items, params, "/v1/products")

    def _product_retrieve(self, params: dict, id: str) -> dict:
        _only(params, set())
        return self._product(id)

    def _product_update(self, params: dict, id: str) -> dict:
        _only(params, {"name", "active", "description", "metadata", "default_price", "images", "url",
                       "statement_descriptor", "unit_label", "tax_code"})  # fmt: skip
        product = self._product(id)
        before = _copy(product)
        for field in ("name", "description", "url", "statement_descriptor", "unit_label", "tax_code"):
            if field in params:
                product[field] = params[field] or None
        if "active" in params:
            product["active"] = _bool(params["active"], "active")
        if "default_price" in params:
            product["default_price"] = self._price(params["default_price"], "default_price", 400)["id"]
        product["metadata"] = _metadata(params, product["metadata"])
        product["updated"] = _now()
        self.make_event("product.updated", product, self._changes(before, product))
        return product

    def _price_create(self, params: dict) -> dict:
        _only(params, {"currency", "product", "product_data", "unit_amount", "unit_amount_decimal", "recurring",
                       "lookup_key", "nickname", "metadata", "active", "transfer_lookup_key", "tax_behavior",
                       "billing_scheme", "tiers", "tiers_mode"})  # fmt: skip
        currency = str(params.get("currency") or "").lower()
        if not re.fullmatch(r"[a-z]{3}", currency):
            raise _required("currency") if not currency else _refuse(f"Invalid currency: {currency}", param="currency")
        if params.get("product"):
            product = self._product(params["product"], "product", 400)
        elif params.get("product_data"):
            data = _dict(params, "product_data")
            allowed = {"name", "active", "metadata", "statement_descriptor", "tax_code", "unit_label"}
            _only(data, allowed, "product_data")
            product = self._product_create(data)
        else:
            raise _required("product")
        scheme = _one_of(params.get("billing_scheme", "per_unit"), ("per_unit", "tiered"), "billing_scheme")
        tiers = None
        if scheme == "tiered":
            if params.get("tiers_mode") != "graduated":
                raise _refuse("The stand-in takes graduated tiers only (tiers_mode=graduated).", param="tiers_mode")
            if "unit_amount" in params or "unit_amount_decimal" in params:
                raise _refuse("Tiered prices take their amounts in tiers, not unit_amount.", param="unit_amount")
            tiers = _tiers(params)
            amount, decimal = None, None
        elif "tiers" in params or "tiers_mode" in params:
            raise _refuse("tiers need billing_scheme=tiered.", param="tiers")
        elif "unit_amount" in params:
            amount = _int(params["unit_amount"], "unit_amount", minimum=0)
            decimal = str(amount)
        elif "unit_amount_decimal" in params:
            try:
                value = Decimal(str(params["unit_amount_decimal"]))
            except InvalidOperation:
                raise _refuse("Invalid decimal: unit_amount_decimal", param="unit_amount_decimal") from None
            if not value.is_finite() or value < 0:
                raise _refuse("Invalid decimal: unit_amount_decimal", param="unit_amount_decimal")
            decimal = str(value.normalize()) if value != value.to_integral() else str(int(value))
            amount = int(value) if value == value.to_integral() else None
        else:
            raise _refuse("You must specify either unit_amount or unit_amount_decimal.", param="unit_amount")
        recurring = None
        if params.get("recurring"):
            given = _dict(params, "recurring")
            _only(given, {"interval", "interval_count", "usage_type", "meter", "trial_period_days"}, "recurring")
            if not given.get("interval"):
                raise _required("recurring[interval]")
            usage_type = _one_of(given.get("usage_type", "licensed"), ("licensed", "metered"), "recurring[usage_type]")
            meter = None
            if usage_type == "metered":
                if not given.get("meter"):
                    raise _refuse("Prices with usage_type=metered must be backed by a meter: set recurring[meter].",
                                  param="recurring[meter]", code="parameter_missing")  # fmt: skip
                meter = self._meter(given["meter"], "recurring[meter]", 400)["id"]
            elif given.get("meter"):
                raise _refuse("recurring[meter] is only for usage_type=metered.", param="recurring[meter]")
            recurring = {
                "interval": _one_of(given["interval"], INTERVALS, "recurring[interval]"),
                "interval_count": _int(given.get("interval_count", 1), "recurring[interval_count]", minimum=1),
                "meter": meter, "trial_period_days": None, "usage_type": usage_type,
            }  # fmt: skip
        lookup_key = params.get("lookup_key") or None
        if lookup_key:
            holder = next((p for p in self.prices.values() if p["lookup_key"] == lookup_key), None)
            if holder is not None:
                if not _bool(params.get("transfer_lookup_key", "false"), "transfer_lookup_key"):
                    message = (f"A price (`{holder['id']}`) already uses that lookup key. Set transfer_lookup_key "
                               "to true to move it to this price.")  # fmt: skip
                    raise _refuse(message, param="lookup_key", code="lookup_key_exists")
                holder["lookup_key"] = None
        price = {
            "id": new_id("price_"), "object": "price", "active": _bool(params.get("active", "true"), "active"),
            "billing_scheme": scheme, "created": _now(), "currency": currency, "custom_unit_amount": None,
            "livemode": False, "lookup_key": lookup_key, "metadata": _metadata(params),
            "nickname": params.get("nickname") or None, "product": product["id"], "recurring": recurring,
            "tax_behavior": params.get("tax_behavior", "unspecified"), "tiers": tiers,
            "tiers_mode": "graduated" if tiers else None,
            "transform_quantity": None, "type": "recurring" if recurring else "one_time", "unit_amount": amount,
            "unit_amount_decimal": decimal,
        }  # fmt: skip
        self.prices[price["id"]] = price
        self.make_event("price.created", price)
        return price

    def _price_list(self, params: dict) -> dict:
        _only(params, self.LIST | {"active", "product", "currency", "type", "lookup_keys"})
        items = list(self.prices.values())
        if "active" in params:
            active = _bool(params["active"], "active")
            items = [p for p in items if p["active"] == active]
        for field in ("product", "currency", "type"):
            if params.get(field):
                items = [p for p in items if p[field] == params[field]]
        if "lookup_keys" in params:
            keys = _list(params, "lookup_keys")
            if len(keys) > 10:
                raise _refuse("You may pass up to 10 lookup_keys.", param="lookup_keys")
            items = [p for p in items if p["lookup_key"] in keys]
        return self._page(items, params, "/v1/prices")

    def _price_retrieve(self, params: dict, id: str) -> dict:
        _only(params, set())
        return self._price(id)

    def _price_update(self, params: dict, id: str) -> dict:
        _only(params, {"active", "lookup_key", "nickname", "metadata", "transfer_lookup_key", "tax_behavior"})
        price = self._price(id)
        before = _copy(price)
        if params.get("lookup_key"):
            holder = next((p for p in self.prices.values() if p["lookup_key"] == params["lookup_key"]), None)
            if holder is not None and holder is not price:
                if not _bool(params.get("transfer_lookup_key", "false"), "transfer_lookup_key"):
                    raise _refuse(f"A price (`{holder['id']}`) already uses that lookup key.", param="lookup_key",
                                  code="lookup_key_exists")  # fmt: skip
                holder["lookup_key"] = None
        if "lookup_key" in params:
            price["lookup_key"] = params["lookup_key"] or None
        if "nickname" in params:
            price["nickname"] = params["nickname"] or None
        if "active" in params:
            price["active"] = _bool(params["active"], "active")
        price["metadata"] = _metadata(params, price["metadata"])
        self.make_event("price.updated", price, self._changes(before, price))
        return price

    # -- customers ---------------------------------------------------------------------------
    CUSTOMER_FIELDS = ("email", "name", "description", "phone")
    CUSTOMER_PARAMS = frozenset({*CUSTOMER_FIELDS, "metadata", "address", "preferred_locales", "shipping",
                                 "invoice_settings", "tax_exempt", "payment_method"})  # fmt: skip

    def _customer_fields(self, params: dict, customer: dict) -> None:
        for field in self.CUSTOMER_FIELDS:
            if field in params:
                customer[field] = params[field] or None
        if customer.get("email") and "@" not in customer["email"]:
            raise _refuse(f"Invalid email address: {customer['email']}", param="email", code="email_invalid")
        if "address" in params:
            customer["address"] = _dict(params, "address") or None
        if "preferred_locales" in params:
            customer["preferred_locales"] = _list(params, "preferred_locales")
        customer["metadata"] = _metadata(params, customer.get("metadata"))

    def _new_customer(self, params: dict) -> dict:
        customer = {
            "id": new_id("cus_", 14), "object": "customer", "address": None, "balance": 0, "created": _now(),
            "currency": None, "default_source": None, "delinquent": False, "description": None, "discount": None,
            "email": None, "invoice_prefix": "".join(secrets.choice(string.ascii_uppercase) for _ in range(8)),
            "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None,
                                 "rendering_options": None},
            "livemode": False, "metadata": {}, "name": None, "next_invoice_sequence": 1, "phone": None,
            "preferred_locales": [], "shipping": None, "tax_exempt": "none", "test_clock": None,
        }  # fmt: skip
        self._customer_fields(params, customer)
        self.customers[customer["id"]] = customer
        self.make_event("customer.created", customer)
        return customer

    def _customer_create(self, params: dict) -> dict:
        _only(params, self.CUSTOMER_PARAMS)
        return self._new_customer(params)

    def _customer_list(self, params: dict) -> dict:
        _only(params, self.LIST | {"email", "created", "test_clock"})
        items = [c for c in self.customers.values() if not c.get("deleted")]
        if "email" in params:  # exact and case-sensitive, as Stripe matches it
            items = [c for c in items if c["email"] == params["email"]]
        return self._page(items, params, "/v1/customers")

    def _customer_retrieve(self, params: dict, id: str) -> dict:
        _only(params, set())
        found = self.customers.get(id)
        if found is None:
            raise _missing("customer", id)
        return found  # a deleted customer answers as a stub with "deleted": true, as Stripe's does

    def _customer_update(self, params: dict, id: str) -> dict:
        _only(params, self.CUSTOMER_PARAMS)
        customer = self._customer(id)
        before = _copy(customer)
        self._customer_fields(params, customer)
        self._emit("customer.updated", customer, self._changes(before, customer))
        return customer

    def _customer_delete(self, params: dict, id: str) -> dict:
        _only(params, set())
        customer = self._customer(id)
        for subscription in self.subscriptions.values():  # Stripe cancels them at once
            if subscription["customer"] == id and subscription["status"] != "canceled":
                before = _copy(subscription)
                self._end(subscription, "cancellation_requested")
                self._emit("customer.subscription.deleted", subscription, self._changes(before, subscription))
        stub = {"id": id, "object": "customer", "deleted": True}
        self.customers[id] = stub
        self._emit("customer.deleted", customer)
        return stub

    def _balance_create(self, params: dict, id: str) -> dict:
        """A credit (negative amount) or debit to the customer's balance, which its next invoices use."""
        _only(params, {"amount", "currency", "description", "metadata"})
        customer = self._customer(id)
        if customer.get("deleted"):
            raise _missing("customer", id)
        if "amount" not in params:
            raise _required("amount")
        amount = _int(params["amount"], "amount")
        if amount == 0:
            raise _refuse("The amount must not be zero.", param="amount")
        currency = str(params.get("currency") or "").lower()
        if not currency:
            raise _required("currency")
        if customer.get("currency") not in (None, currency):
            raise _refuse(f"The customer's balance is in {customer['currency']}, not {currency}.", param="currency")
        before = _copy(customer)
        customer["currency"] = currency
        customer["balance"] += amount
        transaction = {
            "id": new_id("cbtxn_"), "object": "customer_balance_transaction", "amount": amount, "created": _now(),
            "credit_note": None, "currency": currency, "customer": id, "description": params.get("description"),
            "ending_balance": customer["balance"], "invoice": None, "livemode": False,
            "metadata": _metadata(params), "type": "adjustment",
        }  # fmt: skip
        self.balance_transactions.setdefault(id, []).append(transaction)
        self._emit("customer.updated", customer, self._changes(before, customer))
        return transaction

    def _balance_list(self, params: dict, id: str) -> dict:
        _only(params, self.LIST)
        self._customer(id)
        return self._page(list(self.balance_transactions.get(id, [])), params,
                          f"/v1/customers/{id}/balance_transactions")  # fmt: skip

    # -- checkout and the portal -------------------------------------------------------------
    def _checkout_create(self, params: dict) -> dict:
        _only(params, {"mode", "customer", "customer_email", "line_items", "success_url", "cancel_url",
                       "client_reference_id", "metadata", "subscription_data", "allow_promotion_codes",
                       "billing_address_collection", "customer_update", "automatic_tax", "locale",
                       "payment_method_types", "payment_method_collection", "tax_id_collection", "expires_at",
                       "ui_mode", "consent_collection", "custom_text", "phone_number_collection"})  # fmt: skip
        if not params.get("mode"):
            raise _required("mode")
        if params["mode"] != "subscription":
            raise _refuse("The stand-in's Checkout supports mode=subscription only.", param="mode")
        if params.get("ui_mode", "hosted") != "hosted":
            raise _refuse("The stand-in's Checkout is hosted only (ui_mode=hosted).", param="ui_mode")
        if not params.get("success_url"):
            raise _required("success_url")
        if params.get("customer") and params.get("customer_email"):
            raise _refuse("You may only specify one of these parameters: customer, customer_email.", param="customer")
        customer = self._customer(params["customer"], "customer", 400)["id"] if params.get("customer") else None
        subscription_data = _dict(params, "subscription_data")
        _only(subscription_data, {"metadata", "trial_period_days", "description", "billing_cycle_anchor",
                                  "proration_behavior", "trial_settings"}, "subscription_data")  # fmt: skip
        trial_days = subscription_data.get("trial_period_days")
        if trial_days is not None:
            _int(trial_days, "subscription_data[trial_period_days]", minimum=1, maximum=730)
        _metadata(subscription_data, param="metadata")  # checked here, applied when it completes
        lines = _list(params, "line_items")
        if not lines:
            raise _refuse("line_items is required in subscription mode.", param="line_items", code="parameter_missing")
        items: list[tuple[str, int | None]] = []
        for n, line in enumerate(lines):
            prefix = f"line_items[{n}]"
            if not isinstance(line, dict):
                raise _refuse(f"Invalid object: {prefix}", param=prefix)
            _only(line, {"price", "quantity", "adjustable_quantity", "tax_rates"}, prefix)
            if not line.get("price"):
                raise _required(f"{prefix}[price]")
            price = self._price(line["price"], f"{prefix}[price]", 400)
            if not price["recurring"] or not price["active"]:
                raise _refuse(f"The price {price['id']} is not an active recurring price, which subscription mode "
                              "needs.", param=f"{prefix}[price]")  # fmt: skip
            quantity = None
            if _metered(price):
                if "quantity" in line:
                    raise _refuse("Quantity should not be specified where usage_type is `metered`.",
                                  param=f"{prefix}[quantity]")  # fmt: skip
            else:
                if "quantity" not in line:
                    raise _required(f"{prefix}[quantity]")
                quantity = _int(line["quantity"], f"{prefix}[quantity]", minimum=1)
            items.append((price["id"], quantity))
        prices = [self.prices[price_id] for price_id, _ in items]
        self._check_compatible(prices, "line_items")
        now = _now()
        id = new_id("cs_test_", 58)
        subtotal = sum(_cents(_unit(self.prices[p]) * q) for p, q in items if q is not None)
        session = {
            "id": id, "object": "checkout.session", "after_expiration": None,
            "allow_promotion_codes": params.get("allow_promotion_codes") == "true", "amount_subtotal": subtotal,
            "amount_total": subtotal, "automatic_tax": {"enabled": False, "liability": None, "status": None},
            "billing_address_collection": params.get("billing_address_collection"), "cancel_url":
            params.get("cancel_url"), "client_reference_id": params.get("client_reference_id") or None,
            "client_secret": None, "created": now, "currency": prices[0]["currency"], "customer": customer,
            "customer_creation": None, "customer_details": None, "customer_email": params.get("customer_email"),
            "expires_at": _int(params["expires_at"], "expires_at") if params.get("expires_at") else now + 86400,
            "invoice": None, "livemode": False, "locale": params.get("locale"), "metadata": _metadata(params),
            "mode": "subscription", "payment_intent": None, "payment_link": None,
            "payment_method_collection": params.get("payment_method_collection", "always"),
            "payment_method_types": ["card"], "payment_status": "unpaid", "status": "open", "subscription": None,
            "success_url": params["success_url"], "total_details": {"amount_discount": 0, "amount_shipping": 0,
            "amount_tax": 0}, "ui_mode": "hosted", "url": f"{self.base_url}/stand-in/checkout/{id}",
        }  # fmt: skip
        self.checkout_sessions[id] = session
        self._session_items[id] = items
        self._session_data[id] = subscription_data
        return session

    @staticmethod
    def _check_compatible(prices: list[dict], param: str) -> None:
        if len({p["currency"] for p in prices}) > 1 or len({_per(p) for p in prices if p["recurring"]}) > 1:
            raise _refuse("Currency and interval fields must match across all plans on this subscription.",
                          param=param)  # fmt: skip
        ids = [p["id"] for p in prices]
        if len(set(ids)) != len(ids):
            raise _refuse("Cannot add multiple subscription items with the same price.", param=param)

    def _session_line_items(self, id: str) -> dict:
        data = []
        for price_id, quantity in self._session_items.get(id, []):
            price = self.prices[price_id]
            amount = _cents(_unit(price) * quantity) if quantity is not None else 0
            data.append({
                "id": new_id("li_"), "object": "item", "amount_discount": 0, "amount_subtotal": amount,
                "amount_tax": 0, "amount_total": amount, "currency": price["currency"],
                "description": self.products[price["product"]]["name"], "price": _copy(price), "quantity": quantity,
            })  # fmt: skip
        return {"object": "list", "data": data, "has_more": False, "url": f"/v1/checkout/sessions/{id}/line_items"}

    def _checkout_list(self, params: dict) -> dict:
        _only(params, self.LIST | {"customer", "subscription", "status", "payment_intent"})
        items = list(self.checkout_sessions.values())
        for field in ("customer", "subscription", "status"):
            if params.get(field):
                items = [s for s in items if s[field] == params[field]]
        return self._page(items, params, "/v1/checkout/sessions")

    def _checkout_retrieve(self, params: dict, id: str) -> dict:
        _only(params, set())
        return self._session(id)

    def _checkout_line_items(self, params: dict, id: str) -> dict:
        _only(params, self.LIST)
        self._session(id)
        return self._session_line_items(id)

    def _checkout_expire(self, params: dict, id: str) -> dict:
        _only(params, set())
        session = self._session(id)
        if session["status"] != "open":
            raise _refuse("Only Checkout Sessions with a status in ['open'] can be expired.")
        session.update(status="expired", url=None)
        self._emit("checkout.session.expired", session)
        return session

    def _portal_create(self, params: dict) -> dict:
        _only(params, {"customer", "return_url", "configuration", "locale", "flow_data", "on_behalf_of"})
        if not params.get("customer"):
            raise _required("customer")
        customer = self._customer(params["customer"], "customer", 400)
        configuration = params.get("configuration") or self.portal_configuration
        if configuration != self.portal_configuration:
            raise _missing("billing_portal.configuration", configuration, "configuration", 400)
        id = new_id("bps_")
        session = {
            "id": id, "object": "billing_portal.session", "configuration": configuration, "created": _now(),
            "customer": customer["id"], "flow": None, "livemode": False, "locale": params.get("locale"),
            "on_behalf_of": None, "return_url": params.get("return_url"),
            "url": f"{self.base_url}/stand-in/portal/{id}",
        }  # fmt: skip
        self.portal_sessions[id] = session
        return session

    # -- subscriptions -----------------------------------------------------------------------
    def _new_item(self, subscription_id: str, price: dict, quantity: int | None, start: int, end: int) -> dict:
        item = {
            "id": new_id("si_", 14), "object": "subscription_item", "created": _now(), "current_period_end": end,
            "current_period_start": start, "discounts": [], "metadata": {}, "price": _copy(price),
            "subscription": subscription_id, "tax_rates": [],
        }  # fmt: skip
        if not _metered(price):  # metered items have no quantity: usage is what is billed
            item["quantity"] = quantity or 1
        return item

    def _new_subscription(self, customer_id: str, items: list[tuple[dict, int | None]], *, metadata: dict,
                          trial_days: int | None = None, description: str | None = None) -> dict:  # fmt: skip
        now = _now()
        first = items[0][0]
        trial_end = now + trial_days * 86400 if trial_days else None
        end = trial_end or add_interval(now, first["recurring"]["interval"], first["recurring"]["interval_count"])
        id = new_id("sub_", 14)
        subscription = {
            "id": id, "object": "subscription", "application": None,
            "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
            "billing_cycle_anchor": now, "cancel_at": None, "cancel_at_period_end": False, "canceled_at": None,
            "cancellation_details": {"comment": None, "feedback": None, "reason": None},
            "collection_method": "charge_automatically", "created": now, "currency": first["currency"],
            "customer": customer_id, "days_until_due": None, "default_payment_method": None, "description": description,
            "discounts": [], "ended_at": None,
            "items": {"object": "list", "data": [self._new_item(id, p, q, now, end) for p, q in items],
                      "has_more": False, "total_count": len(items), "url": f"/v1/subscription_items?subscription={id}"},
            "latest_invoice": None, "livemode": False, "metadata": metadata, "pause_collection": None,
            "pending_update": None, "schedule": None, "start_date": now,
            "status": "trialing" if trial_end else "active", "test_clock": None, "trial_end": trial_end,
            "trial_start": now if trial_end else None,
        }  # fmt: skip
        self.subscriptions[id] = subscription
        return subscription

    @staticmethod
    def _items(subscription: dict) -> list[dict]:
        return subscription["items"]["data"]

    @staticmethod
    def _period(subscription: dict) -> tuple[int, int]:
        item = subscription["items"]["data"][0]
        return item["current_period_start"], item["current_period_end"]

    def _end(self, subscription: dict, reason: str) -> None:
        now = _now()
        subscription.update(status="canceled", canceled_at=now, ended_at=now, cancel_at_period_end=False,
                            cancel_at=None)  # fmt: skip
        subscription["cancellation_details"] = {**subscription["cancellation_details"], "reason": reason}
        self._pending_lines.pop(subscription["id"], None)

    def _current_subscription(self, customer_id: str) -> dict | None:
        """The customer's newest subscription that is not canceled."""
        live = [s for s in self.subscriptions.values() if s["customer"] == customer_id and s["status"] != "canceled"]
        return live[-1] if live else None

    def _subscription_list(self, params: dict) -> dict:
        _only(params, self.LIST | {"customer", "price", "status", "created", "collection_method"})
        items = list(self.subscriptions.values())
        if params.get("customer"):
            items = [s for s in items if s["customer"] == params["customer"]]
        if params.get("price"):
            items = [s for s in items if any(i["price"]["id"] == params["price"] for i in self._items(s))]
        status = params.get("status")
        if status is None:
            items = [s for s in items if s["status"] != "canceled"]
        elif status == "ended":
            items = [s for s in items if s["status"] in ("canceled", "incomplete_expired")]
        elif status != "all":
            items = [s for s in items if s["status"] == _one_of(status, (*SUBSCRIPTION_STATUSES, "all", "ended"),
                                                               "status")]  # fmt: skip
        return self._page(items, params, "/v1/subscriptions")

    def _subscription_retrieve(self, params: dict, id: str) -> dict:
        _only(params, set())
        return self._subscription(id)

    def _item_plan(self, subscription: dict, changes: list, param: str) -> list[dict]:
        """What each item becomes: ``{"item": the current item or None (a new one), "price": its price
        (None: deleted), "quantity"}``, from ``items[n][id|price|quantity|deleted]``."""
        plan = [{"item": item, "price": item["price"], "quantity": item.get("quantity")}
                for item in self._items(subscription)]  # fmt: skip
        by_id = {entry["item"]["id"]: entry for entry in plan}
        for n, change in enumerate(changes):
            prefix = f"{param}[{n}]"
            if not isinstance(change, dict):
                raise _refuse(f"Invalid object: {prefix}", param=prefix)
            _only(change, {"id", "price", "quantity", "deleted", "metadata", "clear_usage", "discounts",
                           "tax_rates"}, prefix)  # fmt: skip
            price = self._price(change["price"], f"{prefix}[price]", 400) if change.get("price") else None
            if price is not None and (not price["recurring"] or not price["active"]):
                raise _refuse(f"The price {price['id']} is not an active recurring price.", param=f"{prefix}[price]")
            quantity = _int(change["quantity"], f"{prefix}[quantity]", minimum=0) if "quantity" in change else None
            deleted = _bool(change.get("deleted", "false"), f"{prefix}[deleted]")
            if change.get("id"):
                entry = by_id.get(change["id"])
                if entry is None:
                    raise _missing("subscription item", change["id"], f"{prefix}[id]", 400)
                if deleted:
                    entry["price"] = None
                else:
                    entry["price"] = price or entry["price"]
                    entry["quantity"] = quantity if quantity is not None else entry["quantity"]
            elif deleted:
                raise _required(f"{prefix}[id]")
            elif price is None:
                raise _required(f"{prefix}[price]")
            else:
                plan.append({"item": None, "price": price, "quantity": quantity})
        for entry in plan:
            if _metered(entry["price"]):
                entry["quantity"] = None
            elif entry["price"] is not None and entry["quantity"] is None:
                entry["quantity"] = 1
        remaining = [entry["price"] for entry in plan if entry["price"] is not None]
        if not remaining:
            raise _refuse("A subscription must have at least one active price.", param=param)
        self._check_compatible(remaining, param)
        return plan

    def _line(self, subscription: dict, item_id: str | None, price: dict, quantity: float | None,
              amount: int, description: str, period: tuple[int, int], proration: bool = False) -> dict:  # fmt: skip
        return {
            "id": new_id("il_"), "object": "line_item", "amount": amount, "currency": price["currency"],
            "description": description, "discount_amounts": [], "discountable": True, "discounts": [],
            "invoice": None, "livemode": False, "metadata": {},
            "parent": {"type": "subscription_item_details", "invoice_item_details": None,
                       "subscription_item_details": {"invoice_item": None, "proration": proration,
                                                     "proration_details": {"credited_items": None},
                                                     "subscription": subscription["id"],
                                                     "subscription_item": item_id}},
            "period": {"start": period[0], "end": period[1]}, "pretax_credit_amounts": [],
            "pricing": {"type": "price_details", "price_details": {"price": price["id"], "product": price["product"]},
                        "unit_amount_decimal": price["unit_amount_decimal"]},
            "quantity": quantity, "subtotal": amount, "taxes": [],
        }  # fmt: skip

    def _describe(self, price: dict, quantity: float | None) -> str:
        name = self.products[price["product"]]["name"]
        unit = money(_unit(price), price["currency"])
        per = "unit" if _metered(price) else _per(price)
        return f"{_number(quantity or 0)} × {name} (at {unit} / {per})"

    def _named(self, price: dict, quantity: int | None) -> str:
        name = self.products[price["product"]]["name"]
        return f"{quantity} × {name}" if quantity and quantity != 1 else name

    def _proration_lines(self, subscription: dict, plan: list[dict], when: int) -> tuple[list[dict], bool]:
        """The lines a change at ``when`` makes: a credit for the unused time of each licensed item that
        changes, a charge for the remaining time of what replaces it; with the billing interval changed
        (``reset``), a charge for a whole new period from ``when`` instead."""
        start, end = self._period(subscription)
        if not start <= when <= end:
            raise _refuse("proration_date must be within the current billing period.", param="proration_date")
        first = self._items(subscription)[0]["price"]
        reset = any(_per(e["price"]) != _per(first) for e in plan if e["price"] is not None and e["price"]["recurring"])
        fraction = Decimal(end - when) / Decimal(end - start) if end > start else Decimal(0)
        lines = []
        for entry in plan:
            old, price, quantity = entry["item"], entry["price"], entry["quantity"]
            same = old is not None and price is not None and price["id"] == old["price"]["id"]
            if same and quantity == old.get("quantity") and not reset:
                continue
            if old is not None and _licensed(old["price"]):
                amount = -_cents(_unit(old["price"]) * old["quantity"] * fraction)
                text = f"Unused time on {self._named(old['price'], old['quantity'])} after {_day(when)}"
                lines.append(self._line(subscription, old["id"], old["price"], old["quantity"], amount, text,
                                        (when, end), proration=True))  # fmt: skip
            if _licensed(price):
                item_id = old["id"] if old is not None else None
                if reset:
                    new_end = add_interval(when, price["recurring"]["interval"], price["recurring"]["interval_count"])
                    amount = _cents(_unit(price) * quantity)
                    lines.append(self._line(subscription, item_id, price, quantity, amount,
                                            self._describe(price, quantity), (when, new_end)))  # fmt: skip
                else:
                    amount = _cents(_unit(price) * quantity * fraction)
                    text = f"Remaining time on {self._named(price, quantity)} after {_day(when)}"
                    lines.append(self._line(subscription, item_id, price, quantity, amount, text, (when, end),
                                            proration=True))  # fmt: skip
        return lines, reset

    def _next_period_lines(self, subscription: dict, plan: list[dict], since: int | None = None) -> list[dict]:
        """The next invoice's lines at the period's end: each licensed item for the next period (in
        advance) and each metered item's usage in this one (in arrears)."""
        start, end = self._period(subscription)
        lines = []
        for entry in plan:
            price = entry["price"]
            if price is None:
                continue
            item_id = entry["item"]["id"] if entry["item"] else None
            if _metered(price):
                used_from = start if entry["item"] is not None else (since or start)
                usage = self._usage(price["recurring"]["meter"], subscription["customer"], used_from, end)
                amount = _cents(_amount(price, Decimal(str(usage))))
                lines.append(self._line(subscription, item_id, price, usage, amount, self._describe(price, usage),
                                        (used_from, end)))  # fmt: skip
            else:
                next_end = add_interval(end, price["recurring"]["interval"], price["recurring"]["interval_count"])
                amount = _cents(_unit(price) * entry["quantity"])
                lines.append(self._line(subscription, item_id, price, entry["quantity"], amount,
                                        self._describe(price, entry["quantity"]), (end, next_end)))  # fmt: skip
        return lines

    PRORATION_BEHAVIORS = ("create_prorations", "none", "always_invoice")

    def _subscription_update(self, params: dict, id: str) -> dict:
        _only(params, {"items", "proration_behavior", "proration_date", "cancel_at_period_end", "metadata",
                       "cancellation_details", "description", "payment_behavior", "default_payment_method",
                       "off_session", "collection_method"})  # fmt: skip
        subscription = self._subscription(id)
        before = _copy(subscription)
        if subscription["status"] == "canceled" and set(params) - {"metadata", "cancellation_details", "expand"}:
            raise _refuse("A canceled subscription can only update its cancellation_details and metadata.")
        behavior = _one_of(params.get("proration_behavior", "create_prorations"), self.PRORATION_BEHAVIORS,
                           "proration_behavior")  # fmt: skip
        now = _now()
        if params.get("items"):
            when = _int(params["proration_date"], "proration_date") if params.get("proration_date") else now
            plan = self._item_plan(subscription, _list(params, "items"), "items")
            lines, reset = self._proration_lines(subscription, plan, when)
            if behavior == "none":
                lines = [line for line in lines if not line["parent"]["subscription_item_details"]["proration"]]
            start, end = self._period(subscription)
            if reset:
                price = next(e["price"] for e in plan if e["price"] is not None)
                recurring = price["recurring"]
                start, end = when, add_interval(when, recurring["interval"], recurring["interval_count"])
                subscription["billing_cycle_anchor"] = when
            items = []
            for entry in plan:
                if entry["price"] is None:
                    continue
                item = entry["item"] or self._new_item(id, entry["price"], entry["quantity"], start, end)
                item["price"] = _copy(entry["price"])
                if entry["quantity"] is not None:
                    item["quantity"] = entry["quantity"]
                item.update(current_period_start=start, current_period_end=end)
                items.append(item)
            subscription["items"]["data"] = items
            subscription["items"]["total_count"] = len(items)
            subscription["currency"] = items[0]["price"]["currency"]
            if lines and (reset or behavior == "always_invoice"):
                invoice = self._new_invoice(subscription, lines, reason="subscription_update", status="paid")
                subscription["latest_invoice"] = invoice["id"]
                self._emit("invoice.paid", invoice)
            elif lines:  # create_prorations: on the next invoice
                self._pending_lines.setdefault(id, []).extend(lines)
        if "cancel_at_period_end" in params:
            at_end = _bool(params["cancel_at_period_end"], "cancel_at_period_end")
            cancel_at = self._period(subscription)[1] if at_end else None
            subscription.update(cancel_at_period_end=at_end, cancel_at=cancel_at, canceled_at=now if at_end else None)
        if "cancellation_details" in params:
            details = _dict(params, "cancellation_details")
            _only(details, {"comment", "feedback"}, "cancellation_details")
            subscription["cancellation_details"].update({k: v or None for k, v in details.items()})
        if "description" in params:
            subscription["description"] = params["description"] or None
        subscription["metadata"] = _metadata(params, subscription["metadata"])
        changes = self._changes(before, subscription)
        if changes:
            self._emit("customer.subscription.updated", subscription, changes)
        return subscription

    def _subscription_cancel(self, params: dict, id: str) -> dict:
        _only(params, {"invoice_now", "prorate", "cancellation_details"})
        subscription = self._subscription(id)
        if subscription["status"] == "canceled":
            raise _refuse(f"This subscription has already been canceled: {id}", code="resource_missing", status=404)
        before = _copy(subscription)
        self._end(subscription, "cancellation_requested")
        details = _dict(params, "cancellation_details")
        _only(details, {"comment", "feedback"}, "cancellation_details")
        subscription["cancellation_details"].update({k: v or None for k, v in details.items()})
        self._emit("customer.subscription.deleted", subscription, self._changes(before, subscription))
        return subscription

    # -- invoices ----------------------------------------------------------------------------
    def _new_invoice(self, subscription: dict, lines: list[dict], *, reason: str, status: str,
                     preview: bool = False) -> dict:  # fmt: skip
        customer = self.customers.get(subscription["customer"], {})
        now = _now()
        id = new_id("upcoming_in_") if preview else new_id("in_")
        total = sum(line["amount"] for line in lines)
        # The customer's balance (a credit is negative) is applied first, as Stripe does on finalizing.
        starting = customer.get("balance", 0) if customer.get("id") else 0
        ending = starting + total if starting < 0 else starting
        due = max(total + starting, 0) if starting < 0 else max(total, 0)
        if not preview and customer.get("id") and starting < 0:
            customer["balance"] = min(ending, 0)
        paid = status == "paid"
        for line in lines:
            line["invoice"] = None if preview else id
        number = None
        if not preview:
            count = self._invoice_counts[customer.get("id")] = self._invoice_counts.get(customer.get("id"), 0) + 1
            number = f"{customer.get('invoice_prefix', 'STANDIN')}-{count:04d}"
        periods = [line["period"] for line in lines] or [{"start": now, "end": now}]
        invoice = {
            "id": id, "object": "invoice", "account_country": "US", "account_name": "JagCall (simulated)",
            "amount_due": due, "amount_overpaid": 0, "amount_paid": due if paid else 0,
            "amount_remaining": 0 if paid else due, "amount_shipping": 0, "attempt_count": 0 if preview else 1,
            "attempted": not preview, "auto_advance": not paid, "billing_reason": reason,
            "collection_method": "charge_automatically", "created": now, "currency": subscription["currency"],
            "customer": subscription["customer"], "customer_email": customer.get("email"),
            "customer_name": customer.get("name"), "description": None, "discounts": [], "due_date": None,
            "effective_at": None if preview else now, "ending_balance": None if preview else min(ending, 0),
            "hosted_invoice_url": None if preview else f"{self.base_url}/stand-in/invoices/{id}",
            "invoice_pdf": None,
            "lines": {"object": "list", "data": lines, "has_more": False, "total_count": len(lines),
                      "url": f"/v1/invoices/{id}/lines"},
            "livemode": False, "metadata": {}, "next_payment_attempt": None, "number": number,
            "parent": {"type": "subscription_details", "quote_details": None,
                       "subscription_details": {"metadata": _copy(subscription["metadata"]),
                                                "subscription": subscription["id"]}},
            "period_end": max(p["end"] for p in periods), "period_start": min(p["start"] for p in periods),
            "starting_balance": starting, "status": status,
            "status_transitions": {"finalized_at": None if preview else now, "marked_uncollectible_at": None,
                                   "paid_at": now if paid else None, "voided_at": None},
            "subtotal": total, "subtotal_excluding_tax": total, "total": total, "total_discount_amounts": [],
            "total_excluding_tax": total, "total_taxes": [],
        }  # fmt: skip
        if not preview:
            self.invoices[id] = invoice
        return invoice

    def _invoice_list(self, params: dict) -> dict:
        _only(params, self.LIST | {"customer", "subscription", "status", "created", "collection_method"})
        items = list(self.invoices.values())
        if params.get("customer"):
            items = [i for i in items if i["customer"] == params["customer"]]
        if params.get("subscription"):
            items = [i for i in items if i["parent"]["subscription_details"]["subscription"] == params["subscription"]]
        if params.get("status"):
            items = [i for i in items if i["status"] == params["status"]]
        return self._page(items, params, "/v1/invoices")

    def _invoice_retrieve(self, params: dict, id: str) -> dict:
        _only(params, set())
        return self._invoice(id)

    def _invoice_preview(self, params: dict) -> dict:
        _only(params, {"customer", "subscription", "subscription_details", "automatic_tax", "preview_mode",
                       "customer_details", "currency", "discounts", "invoice_items", "issuer", "on_behalf_of"})
        details = _dict(params, "subscription_details")
        _only(details, {"items", "proration_date", "proration_behavior", "cancel_at_period_end", "billing_cycle_anchor",
                        "trial_end", "default_tax_rates", "cancel_at", "cancel_now", "resume_at", "start_date"},
              "subscription_details")  # fmt: skip
        changes = _list(details, "items")
        if params.get("subscription"):
            subscription = self._subscription(params["subscription"], "subscription", 400)
            if params.get("customer") and params["customer"] != subscription["customer"]:
                raise _refuse("The subscription does not belong to this customer.", param="subscription")
        elif params.get("customer"):
            self._customer(params["customer"], "customer", 400)
            subscription = None if changes else self._current_subscription(params["customer"])
            if changes and subscription is None:
                return self._first_invoice_preview(params["customer"], changes)
        else:
            raise _refuse("Missing required param: customer or subscription.", param="customer",
                          code="parameter_missing")  # fmt: skip
        customer = params.get("customer") or (subscription or {}).get("customer")
        if subscription is None or subscription["status"] == "canceled" or (
            subscription["cancel_at_period_end"] and not changes
        ):
            raise _refuse(f"No upcoming invoices for customer: {customer}", code="invoice_upcoming_none", status=404)
        behavior = _one_of(details.get("proration_behavior", "create_prorations"), self.PRORATION_BEHAVIORS,
                           "subscription_details[proration_behavior]")  # fmt: skip
        when = _now()
        if details.get("proration_date"):
            when = _int(details["proration_date"], "subscription_details[proration_date]")
        plan = self._item_plan(subscription, changes, "subscription_details[items]")
        prorations, reset = self._proration_lines(subscription, plan, when) if changes else ([], False)
        if behavior == "none":
            prorations = [line for line in prorations if not line["parent"]["subscription_item_details"]["proration"]]
        if reset or behavior == "always_invoice":
            lines = prorations  # invoiced at once
        else:
            pending = _copy(self._pending_lines.get(subscription["id"], []))
            lines = pending + prorations + self._next_period_lines(subscription, plan, since=when)
        invoice = self._new_invoice(subscription, lines, reason="subscription_update" if changes else "upcoming",
                                    status="draft", preview=True)  # fmt: skip
        invoice["parent"]["subscription_details"]["subscription_proration_date"] = when if changes else None
        return invoice

    def _first_invoice_preview(self, customer_id: str, changes: list) -> dict:
        entries = []
        for n, change in enumerate(changes):
            prefix = f"subscription_details[items][{n}]"
            if not isinstance(change, dict) or not change.get("price"):
                raise _required(f"{prefix}[price]")
            price = self._price(change["price"], f"{prefix}[price]", 400)
            quantity = _int(change.get("quantity", 1), f"{prefix}[quantity]", minimum=1)
            entries.append((price, None if _metered(price) else quantity))
        self._check_compatible([p for p, _ in entries], "subscription_details[items]")
        draft = self._new_subscription(customer_id, entries, metadata={})
        del self.subscriptions[draft["id"]]  # only a preview: the subscription does not exist
        start, end = self._period(draft)
        lines = [self._line(draft, item["id"], item["price"], item.get("quantity"),
                            _cents(_unit(item["price"]) * item["quantity"]),
                            self._describe(item["price"], item["quantity"]), (start, end))
                 for item in self._items(draft) if _licensed(item["price"])]  # fmt: skip
        invoice = self._new_invoice(draft, lines, reason="subscription_create", status="draft", preview=True)
        invoice["parent"]["subscription_details"]["subscription"] = None
        return invoice

    # -- meters ------------------------------------------------------------------------------
    def _meter_create(self, params: dict) -> dict:
        _only(params, {"display_name", "event_name", "default_aggregation", "customer_mapping", "value_settings",
                       "event_time_window"})  # fmt: skip
        for name in ("display_name", "event_name"):
            if not params.get(name):
                raise _required(name)
        aggregation = _dict(params, "default_aggregation")
        if not aggregation.get("formula"):
            raise _required("default_aggregation[formula]")
        formula = _one_of(aggregation["formula"], ("sum", "count", "last"), "default_aggregation[formula]")
        mapping = _dict(params, "customer_mapping")
        _only(mapping, {"event_payload_key", "type"}, "customer_mapping")
        value_settings = _dict(params, "value_settings")
        _only(value_settings, {"event_payload_key"}, "value_settings")
        if any(m["event_name"] == params["event_name"] and m["status"] == "active" for m in self.meters.values()):
            raise _refuse(f"An active meter with event_name '{params['event_name']}' already exists.",
                          param="event_name", code="resource_already_exists")  # fmt: skip
        now = _now()
        meter = {
            "id": new_id("mtr_test_", 24), "object": "billing.meter", "created": now,
            "customer_mapping": {"event_payload_key": mapping.get("event_payload_key", "stripe_customer_id"),
                                 "type": _one_of(mapping.get("type", "by_id"), ("by_id",), "customer_mapping[type]")},
            "default_aggregation": {"formula": formula}, "display_name": params["display_name"],
            "event_name": params["event_name"], "event_time_window": params.get("event_time_window"),
            "livemode": False, "status": "active", "status_transitions": {"deactivated_at": None}, "updated": now,
            "value_settings": {"event_payload_key": value_settings.get("event_payload_key", "value")},
        }  # fmt: skip
        self.meters[meter["id"]] = meter
        return meter

    def _meter_list(self, params: dict) -> dict:
        _only(params, self.LIST | {"status"})
        items = list(self.meters.values())
        if params.get("status"):
            items = [m for m in items if m["status"] == params["status"]]
        return self._page(items, params, "/v1/billing/meters")

    def _meter_retrieve(self, params: dict, id: str) -> dict:
        _only(params, set())
        return self._meter(id)

    def _aggregate(self, meter: dict, customer_id: str, start: int, end: int) -> float:
        customer_key = meter["customer_mapping"]["event_payload_key"]
        value_key = meter["value_settings"]["event_payload_key"]
        events = [e for e in self.meter_events if e["event_name"] == meter["event_name"]
                  and e["payload"].get(customer_key) == customer_id and start <= e["timestamp"] < end]  # fmt: skip
        formula = meter["default_aggregation"]["formula"]
        if formula == "count":
            return float(len(events))
        if formula == "last":
            latest = None
            for event in events:  # the latest timestamp; of equal ones, the last to arrive
                if latest is None or event["timestamp"] >= latest["timestamp"]:
                    latest = event
            return float(latest["payload"][value_key]) if latest else 0.0
        return float(sum(Decimal(e["payload"][value_key]) for e in events))

    def _usage(self, meter_id: str | None, customer_id: str, start: int, end: int) -> float:
        meter = self.meters.get(meter_id or "")
        return self._aggregate(meter, customer_id, start, end) if meter else 0.0

    def _meter_summaries(self, params: dict, id: str) -> dict:
        _only(params, self.LIST | {"customer", "start_time", "end_time", "value_grouping_window"})
        meter = self._meter(id)
        for name in ("customer", "start_time", "end_time"):
            if not params.get(name):
                raise _required(name)
        start, end = _int(params["start_time"], "start_time"), _int(params["end_time"], "end_time")
        for name, value in (("start_time", start), ("end_time", end)):
            if value % 60:
                raise _refuse(f"{name} must be aligned with minute boundaries.", param=name)
        if start >= end:
            raise _refuse("start_time must be before end_time.", param="start_time")
        window = params.get("value_grouping_window")
        if window is None:
            bounds = [(start, end)]
        else:
            step = {"hour": 3600, "day": 86400}[_one_of(window, ("hour", "day"), "value_grouping_window")]
            if start % step or end % step:
                raise _refuse(f"start_time and end_time must align with {window} boundaries.", param="start_time")
            bounds = [(t, t + step) for t in range(start, end, step)]
        customer = params["customer"]
        summaries = [{
            "id": "mtrusg_test_" + hashlib.sha256(f"{id}:{customer}:{s}:{e}".encode()).hexdigest()[:24],
            "object": "billing.meter_event_summary", "aggregated_value": self._aggregate(meter, customer, s, e),
            "end_time": e, "livemode": False, "meter": id, "start_time": s,
        } for s, e in bounds]  # fmt: skip
        # _page lists newest first: hand it the windows so that the first one comes first
        return self._page(list(reversed(summaries)), params, f"/v1/billing/meters/{id}/event_summaries")

    def _meter_event_create(self, params: dict) -> dict:
        _only(params, {"event_name", "payload", "identifier", "timestamp"})
        if not params.get("event_name"):
            raise _required("event_name")
        payload = _dict(params, "payload")
        if not payload:
            raise _required("payload")
        meter = next((m for m in self.meters.values()
                      if m["event_name"] == params["event_name"] and m["status"] == "active"), None)  # fmt: skip
        if meter is None:
            raise _refuse(f"No active meter was found with event_name '{params['event_name']}'.", param="event_name",
                          code="resource_missing")  # fmt: skip
        customer_key = meter["customer_mapping"]["event_payload_key"]
        value_key = meter["value_settings"]["event_payload_key"]
        if not payload.get(customer_key):
            raise _required(f"payload[{customer_key}]")
        self._customer(payload[customer_key], f"payload[{customer_key}]", 400)
        if meter["default_aggregation"]["formula"] != "count" or value_key in payload:
            if value_key not in payload:
                raise _required(f"payload[{value_key}]")
            try:
                value = Decimal(str(payload[value_key]))
            except InvalidOperation:
                value = Decimal("NaN")
            if not value.is_finite():
                raise _refuse(f"payload[{value_key}] must be a number, got '{payload[value_key]}'.",
                              param=f"payload[{value_key}]", code="parameter_invalid")  # fmt: skip
        now = _now()
        timestamp = _int(params["timestamp"], "timestamp") if params.get("timestamp") else now
        if not now - METER_EVENT_PAST_SECONDS <= timestamp <= now + METER_EVENT_FUTURE_SECONDS:
            raise _refuse("timestamp must be within the past 35 calendar days or up to 5 minutes in the future.",
                          param="timestamp", code="timestamp_out_of_range")  # fmt: skip
        identifier = params.get("identifier") or new_id("", 32)
        # [!!] A repeated identifier is refused, never counted twice: that is what keeps a retried or
        # re-sent usage report from billing the customer twice.
        if identifier in self._identifiers:
            self.duplicate_meter_events += 1
            raise _refuse(f"An event already exists with identifier {identifier}.", param="identifier",
                          code="resource_already_exists")  # fmt: skip
        self._identifiers[identifier] = now
        event = {
            "object": "billing.meter_event", "created": now, "event_name": params["event_name"],
            "identifier": identifier, "livemode": False, "payload": dict(payload), "timestamp": timestamp,
        }  # fmt: skip
        self.meter_events.append(event)
        return event

    # -- events ------------------------------------------------------------------------------
    def _event_list(self, params: dict) -> dict:
        _only(params, self.LIST | {"type", "types", "created", "delivery_success"})
        items = list(self.events)
        if params.get("type"):
            pattern = re.escape(params["type"]).replace(r"\*", ".*")
            items = [e for e in items if re.fullmatch(pattern, e["type"])]
        if params.get("types"):
            types = set(_list(params, "types"))
            items = [e for e in items if e["type"] in types]
        return self._page(items, params, "/v1/events")

    def _event_retrieve(self, params: dict, id: str) -> dict:
        _only(params, set())
        found = self._events_by_id.get(id)
        if found is None:
            raise _missing("event", id)
        return found

    # -- what a person does on the hosted pages (and tests through these helpers) -------------
    def complete_checkout(self, session_id: str) -> dict:
        """What the checkout page's "Subscribe" does: the customer's subscription (a new one, or the one
        they have changed to this price), a paid invoice, the session complete; then delivers
        checkout.session.completed, customer.subscription.created (or .updated) and invoice.paid."""
        with self._lock:
            session = self._session(session_id)
            if session["status"] != "open":
                raise _refuse(f"This Checkout Session is no longer open (status: {session['status']}).")
            if session["expires_at"] <= _now():
                session.update(status="expired", url=None)
                raise _refuse("This Checkout Session has expired.")
            if session["customer"] is None:
                email = session["customer_email"]
                customer = self._new_customer({"email": email} if email else {})
            else:
                customer = self._customer(session["customer"], "customer", 400)
            data = self._session_data.get(session_id, {})
            entries = [(self.prices[p], q) for p, q in self._session_items[session_id]]
            trial_days = int(data["trial_period_days"]) if data.get("trial_period_days") else None
            subscription = self._current_subscription(customer["id"])
            if subscription is not None:
                before = _copy(subscription)
                self._replace_items(subscription, entries, trial_days)
                subscription["metadata"] = _metadata(data, subscription["metadata"])
                kind, previous = "customer.subscription.updated", None
            else:
                subscription = self._new_subscription(customer["id"], entries, metadata=_metadata(data),
                                                      trial_days=trial_days, description=data.get("description"))
                kind, before = "customer.subscription.created", None
            start, end = self._period(subscription)
            lines = []
            for item in self._items(subscription):
                if not _licensed(item["price"]):
                    continue
                trial = subscription["status"] == "trialing"
                name = self.products[item["price"]["product"]]["name"]
                amount = 0 if trial else _cents(_unit(item["price"]) * item["quantity"])
                text = f"Trial period for {name}" if trial else self._describe(item["price"], item["quantity"])
                lines.append(self._line(subscription, item["id"], item["price"], item["quantity"], amount, text,
                                        (start, end)))  # fmt: skip
            reason = "subscription_update" if before else "subscription_create"
            invoice = self._new_invoice(subscription, lines, reason=reason, status="paid")
            subscription["latest_invoice"] = invoice["id"]
            previous = self._changes(before, subscription) if before else None
            session.update(
                status="complete", payment_status="no_payment_required" if invoice["amount_due"] == 0 else "paid",
                customer=customer["id"], subscription=subscription["id"], invoice=invoice["id"], url=None,
                customer_details={"address": None, "email": customer["email"], "name": customer["name"],
                                  "phone": None, "tax_exempt": "none", "tax_ids": []},
            )  # fmt: skip
            events = [
                self.make_event("checkout.session.completed", session),
                self.make_event(kind, subscription, previous),
                self.make_event("invoice.paid", invoice),
            ]
            result = _copy(session)
        self._deliver_now(events)
        return result

    def _replace_items(self, subscription: dict, entries: list[tuple[dict, int | None]],
                       trial_days: int | None) -> None:  # fmt: skip
        """The subscription changed to these prices from now on (checkout by a customer who has one)."""
        now = _now()
        first = entries[0][0]
        end = now + trial_days * 86400 if trial_days else add_interval(
            now, first["recurring"]["interval"], first["recurring"]["interval_count"]
        )
        current = self._items(subscription)
        items = []
        for n, (price, quantity) in enumerate(entries):
            if n < len(current):  # the item keeps its id, as a price change through the API does
                item = current[n]
                item["price"] = _copy(price)
                item.pop("quantity", None)
                if not _metered(price):
                    item["quantity"] = quantity or 1
                item.update(current_period_start=now, current_period_end=end)
            else:
                item = self._new_item(subscription["id"], price, quantity, now, end)
            items.append(item)
        subscription["items"]["data"] = items
        subscription["items"]["total_count"] = len(items)
        subscription.update(
            billing_cycle_anchor=now, cancel_at=None, cancel_at_period_end=False, canceled_at=None,
            currency=first["currency"], status="trialing" if trial_days else "active",
            trial_start=now if trial_days else None, trial_end=end if trial_days else None,
        )  # fmt: skip
        self._pending_lines.pop(subscription["id"], None)

    def set_subscription_status(self, subscription_id: str, status: str, *, deliver: bool = True) -> dict:
        """Put the subscription in ``status``; records (and delivers) customer.subscription.updated,
        or .deleted for canceled."""
        _one_of(status, SUBSCRIPTION_STATUSES, "status")
        with self._lock:
            subscription = self._subscription(subscription_id)
            before = _copy(subscription)
            if status == "canceled":
                self._end(subscription, "cancellation_requested")
            else:
                subscription["status"] = status
            kind = "customer.subscription.deleted" if status == "canceled" else "customer.subscription.updated"
            event = self.make_event(kind, subscription, self._changes(before, subscription))
            result = _copy(subscription)
        if deliver:
            self._deliver_now([event])
        return result

    def fail_payment(self, subscription_id: str, *, deliver: bool = True) -> dict:
        """The renewal payment fails: an open invoice for the current price, the subscription past_due;
        delivers invoice.payment_failed and customer.subscription.updated. Returns the invoice."""
        with self._lock:
            subscription = self._subscription(subscription_id)
            if subscription["status"] == "canceled":
                raise _refuse("A canceled subscription has no payment to fail.")
            before = _copy(subscription)
            start, end = self._period(subscription)
            lines = [self._line(subscription, item["id"], item["price"], item["quantity"],
                                _cents(_unit(item["price"]) * item["quantity"]),
                                self._describe(item["price"], item["quantity"]), (start, end))
                     for item in self._items(subscription) if _licensed(item["price"])]  # fmt: skip
            invoice = self._new_invoice(subscription, lines, reason="subscription_cycle", status="open")
            invoice.update(auto_advance=True, next_payment_attempt=_now() + 3 * 86400)
            subscription.update(status="past_due", latest_invoice=invoice["id"])
            events = [
                self.make_event("invoice.payment_failed", invoice),
                self.make_event("customer.subscription.updated", subscription, self._changes(before, subscription)),
            ]
            result = _copy(invoice)
        if deliver:
            self._deliver_now(events)
        return result

    def pay_invoice(self, invoice_or_subscription_id: str, *, deliver: bool = True) -> dict:
        """Pay an open invoice (given by its id, or by its subscription's: the newest open one); its
        subscription becomes active again. Delivers invoice.paid and customer.subscription.updated."""
        with self._lock:
            id = invoice_or_subscription_id
            if id.startswith("sub_"):
                open_ones = [i for i in self.invoices.values() if i["status"] == "open"
                             and i["parent"]["subscription_details"]["subscription"] == id]  # fmt: skip
                if not open_ones:
                    raise _refuse(f"Subscription {id} has no open invoice.")
                invoice = open_ones[-1]
            else:
                invoice = self._invoice(id)
            if invoice["status"] != "open":
                raise _refuse(f"Invoice {invoice['id']} is {invoice['status']}, not open.")
            now = _now()
            invoice.update(status="paid", amount_paid=invoice["amount_due"], amount_remaining=0, auto_advance=False,
                           next_payment_attempt=None, attempt_count=invoice["attempt_count"] + 1)  # fmt: skip
            invoice["status_transitions"]["paid_at"] = now
            events = [self.make_event("invoice.paid", invoice)]
            subscription = self.subscriptions.get(invoice["parent"]["subscription_details"]["subscription"])
            if subscription is not None:
                before = _copy(subscription)
                if subscription["status"] in ("past_due", "unpaid", "incomplete"):
                    subscription["status"] = "active"
                events.append(self.make_event("customer.subscription.updated", subscription,
                                              self._changes(before, subscription)))  # fmt: skip
            result = _copy(invoice)
        if deliver:
            self._deliver_now(events)
        return result

    # -- helpers for tests -------------------------------------------------------------------
    def add_meter(self, event_name: str, *, display_name: str | None = None, formula: str = "sum") -> dict:
        """A billing meter for ``event_name`` (the existing active one if there is one)."""
        with self._lock:
            meter = next((m for m in self.meters.values()
                          if m["event_name"] == event_name and m["status"] == "active"), None)  # fmt: skip
            if meter is None:
                meter = self._meter_create({"display_name": display_name or event_name, "event_name": event_name,
                                            "default_aggregation": {"formula": formula}})  # fmt: skip
            return _copy(meter)

    def add_price(self, *, product_name: str = "JagCall", unit_amount: int = 4900, currency: str = "usd",
                  interval: str = "month", lookup_key: str | None = None, nickname: str | None = None,
                  metered_event_name: str | None = None, metadata: dict | None = None,
                  product: str | None = None) -> dict:  # fmt: skip
        """A recurring price (and its product, or ``product``'s id); metered on a meter for
        ``metered_event_name`` when that is given (the meter made if missing)."""
        recurring: dict[str, Any] = {"interval": interval}
        if metered_event_name:
            recurring.update(usage_type="metered", meter=self.add_meter(metered_event_name)["id"])
        params: dict[str, Any] = {"currency": currency, "unit_amount": str(unit_amount), "recurring": recurring,
                                  "metadata": metadata or {}}  # fmt: skip
        params.update({"product": product} if product else {"product_data": {"name": product_name}})
        if lookup_key:
            params["lookup_key"] = lookup_key
        if nickname:
            params["nickname"] = nickname
        with self._lock:
            return _copy(self._price_create(params))

    def add_customer(self, email: str | None = None, *, name: str | None = None, metadata: dict | None = None) -> dict:
        params = {k: v for k, v in {"email": email, "name": name, "metadata": metadata}.items() if v}
        with self._lock:
            return _copy(self._new_customer(params))

    def subscription_for(self, customer_id: str) -> dict | None:
        """The customer's subscription: the newest one not canceled, else the newest one, else None."""
        with self._lock:
            mine = [s for s in self.subscriptions.values() if s["customer"] == customer_id]
            current = self._current_subscription(customer_id) or (mine[-1] if mine else None)
            return _copy(current) if current else None

    def meter_total(self, event_name: str, customer_id: str) -> float:
        """The usage of ``customer_id`` on the meter of ``event_name``, over all time (0.0 without a meter)."""
        with self._lock:
            meter = next((m for m in self.meters.values() if m["event_name"] == event_name), None)
            return self._aggregate(meter, customer_id, 0, 2**62) if meter else 0.0

    # -- hosted pages ------------------------------------------------------------------------
    def _hosted(self, request: RecordedRequest) -> Reply:
        parts = request.path.strip("/").split("/")[1:]
        try:
            if parts[:1] == ["checkout"] and len(parts) == 2 and request.method == "GET":
                return self._checkout_page(parts[1])
            if parts[:1] == ["checkout"] and len(parts) == 3 and parts[2] == "pay" and request.method == "POST":
                session = self.complete_checkout(parts[1])
                return Reply(303, b"", "text/plain", {"Location": self._success_url(session)})
            if parts[:1] == ["portal"] and len(parts) == 2 and request.method == "GET":
                return self._portal_page(parts[1])
            if parts[:1] == ["portal"] and len(parts) == 3 and request.method == "POST":
                return self._portal_action(parts[1], parts[2])
            if parts[:1] == ["invoices"] and len(parts) == 2 and request.method == "GET":
                return self._invoice_page(parts[1])
        except StripeStandInError as error:
            body = f"<p class='error'>{html.escape(error.message)}</p>"
            return self._html(body, "Simulated Stripe — that did not work", status=error.status)
        return self._html("<p>There is no such page.</p>", "Simulated Stripe — not found", status=404)

    @staticmethod
    def _success_url(session: dict) -> str:
        return session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])

    @staticmethod
    def _html(body: str, title: str, status: int = 200) -> Reply:
        page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f6f9fc; color: #1a1f36; margin: 0; }}
main {{ max-width: 32rem; margin: 3rem auto; background: #fff; border-radius: 8px; padding: 2rem;
        box-shadow: 0 2px 8px rgba(0,0,0,.08); }}
.banner {{ background: #fff4d6; border: 1px solid #f5c451; border-radius: 6px; padding: .6rem .8rem;
           font-size: .9rem; margin-bottom: 1.5rem; }}
table {{ width: 100%; border-collapse: collapse; margin: 1rem 0; }}
td, th {{ text-align: left; padding: .4rem 0; border-bottom: 1px solid #e3e8ee; }}
td.amount, th.amount {{ text-align: right; }}
button {{ background: #635bff; color: #fff; border: 0; border-radius: 6px; padding: .7rem 1.2rem;
          font-size: 1rem; cursor: pointer; width: 100%; margin-top: .5rem; }}
button.secondary {{ background: #fff; color: #1a1f36; border: 1px solid #c1c9d2; }}
form {{ margin: 0; }} a {{ color: #635bff; }} .error {{ color: #c0123c; }} .muted {{ color: #697386; }}
</style></head><body><main>
<div class="banner" role="note">{html.escape(title)}</div>
{body}
</main></body></html>"""
        return Reply(status, page.encode(), "text/html; charset=utf-8")

    def _checkout_page(self, session_id: str) -> Reply:
        title = "Simulated Stripe Checkout — no card is needed, nothing is charged"
        with self._lock:
            session = _copy(self._session(session_id))
            items = self._session_line_items(session_id)["data"]
        back = session["cancel_url"]
        back_link = f"<p><a href='{html.escape(back)}'>Back</a></p>" if back else ""
        if session["status"] != "open":
            note = "is complete" if session["status"] == "complete" else "has expired"
            link = self._success_url(session) if session["status"] == "complete" else back
            return self._html(f"<h1>This checkout {note}</h1><p><a href='{html.escape(link or '')}'>Continue</a></p>",
                              title)  # fmt: skip
        rows = []
        for item in items:
            price = item["price"]
            per = "unit used" if _metered(price) else _per(price)
            quantity = f"{item['quantity']} × " if item["quantity"] and item["quantity"] != 1 else ""
            rows.append(f"<tr><td>{quantity}{html.escape(item['description'])}</td>"
                        f"<td class='amount'>{money(_unit(price), price['currency'])} / {per}</td></tr>")  # fmt: skip
        total = money(session["amount_total"], session["currency"])
        body = f"""<h1>Subscribe</h1>
<table><thead><tr><th>Plan</th><th class="amount">Price</th></tr></thead><tbody>{''.join(rows)}</tbody></table>
<p>Due today: <strong>{total}</strong> <span class="muted">(simulated: nothing is charged)</span></p>
<form method="post" action="/stand-in/checkout/{html.escape(session_id)}/pay">
<button type="submit">Subscribe</button></form>
{back_link}"""
        return self._html(body, title)

    @staticmethod
    def _unit_name(price: dict) -> str:
        return "unit" if _metered(price) else _per(price)

    def _portal_session(self, portal_id: str) -> dict:
        session = self.portal_sessions.get(portal_id)
        if session is None:
            raise _missing("billing_portal.session", portal_id)
        return session

    def _portal_page(self, portal_id: str) -> Reply:
        title = "Simulated Stripe customer portal — no card is needed, nothing is charged"
        with self._lock:
            session = _copy(self._portal_session(portal_id))
            subscription = self.subscription_for(session["customer"])
            invoices = [_copy(i) for i in reversed(self.invoices.values()) if i["customer"] == session["customer"]]
        action = f"/stand-in/portal/{html.escape(portal_id)}"
        parts = ["<h1>Your subscription</h1>"]
        if subscription is None:
            parts.append("<p>You have no subscription.</p>")
        else:
            plan = ", ".join(
                f"{html.escape(self.products[i['price']['product']]['name'])} "
                f"({money(_unit(i['price']), i['price']['currency'])} / {self._unit_name(i['price'])})"
                for i in self._items(subscription)
            )
            end = self._period(subscription)[1]
            ends = "Ends" if subscription["cancel_at_period_end"] else "Renews"
            parts.append(f"<table><tr><th>Plan</th><td>{plan}</td></tr>"
                         f"<tr><th>Status</th><td>{html.escape(subscription['status'])}</td></tr>"
                         f"<tr><th>{'Ended' if subscription['status'] == 'canceled' else ends}</th>"
                         f"<td>{_day(subscription['ended_at'] or end)}</td></tr></table>")  # fmt: skip
            if subscription["status"] != "canceled":
                parts.append(f"<form method='post' action='{action}/cancel'><button type='submit' "
                             "class='secondary'>Cancel subscription</button></form>")  # fmt: skip
                parts.append(f"<form method='post' action='{action}/fail-payment'><button type='submit' "
                             "class='secondary'>Simulate a failed payment</button></form>")  # fmt: skip
            if any(i["status"] == "open" for i in invoices):
                parts.append(f"<form method='post' action='{action}/pay-invoice'><button type='submit'>"
                             "Pay the open invoice</button></form>")  # fmt: skip
        if invoices:
            rows = "".join(
                f"<tr><td><a href='/stand-in/invoices/{html.escape(i['id'])}'>{html.escape(i['number'] or i['id'])}</a>"
                f"</td><td>{_day(i['created'])}</td><td>{html.escape(i['status'])}</td>"
                f"<td class='amount'>{money(i['amount_due'], i['currency'])}</td></tr>"
                for i in invoices
            )
            parts.append(f"<h2>Invoices</h2><table>{rows}</table>")
        if session["return_url"]:
            parts.append(f"<p><a href='{html.escape(session['return_url'])}'>Return to JagCall</a></p>")
        return self._html("\n".join(parts), title)

    def _portal_action(self, portal_id: str, action: str) -> Reply:
        with self._lock:
            session = self._portal_session(portal_id)
            subscription = self.subscription_for(session["customer"])
        if subscription is None:
            raise _refuse("You have no subscription.")
        if action == "cancel":
            if subscription["status"] == "canceled":
                raise _refuse("This subscription is already canceled.")
            self.set_subscription_status(subscription["id"], "canceled")
        elif action == "fail-payment":
            self.fail_payment(subscription["id"])
        elif action == "pay-invoice":
            self.pay_invoice(subscription["id"])
        else:
            raise _refuse("There is no such action.", status=404)
        return Reply(303, b"", "text/plain", {"Location": f"/stand-in/portal/{portal_id}"})

    def _invoice_page(self, invoice_id: str) -> Reply:
        with self._lock:
            invoice = _copy(self._invoice(invoice_id))
        rows = "".join(
            f"<tr><td>{html.escape(line['description'] or '')}</td>"
            f"<td class='amount'>{money(line['amount'], line['currency'])}</td></tr>"
            for line in invoice["lines"]["data"]
        )
        currency = invoice["currency"]
        body = f"""<h1>Invoice {html.escape(invoice['number'] or invoice['id'])}</h1>
<p>Status: <strong>{html.escape(invoice['status'])}</strong> · {_day(invoice['created'])}</p>
<table><tbody>{rows}</tbody></table>
<p>Amount due: <strong>{money(invoice['amount_due'], currency)}</strong> ·
Paid: {money(invoice['amount_paid'], currency)} · Remaining: {money(invoice['amount_remaining'], currency)}</p>"""
        return self._html(body, "Simulated Stripe invoice — nothing is charged")
