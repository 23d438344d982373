"""Events that other code announces, turned into audit events by one service each.

Security events (accounts.security_events), accounts' changes
(accounts.activity), back-office changes (Django's LogEntry) and refused
requests (compliance.middleware). The receivers and the middleware only hand
over to these.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import time
from datetime import UTC, datetime

import redis
from django.conf import settings

from compliance.actors import Actor, actor_from_request, resolve_actor
from compliance.models import ActorType, AuditEvent, Outcome

from jagcall.kernel.redis import cache_redis
from compliance.services.audit import ACTION_FORMAT, _append, audit_changes, audit_record

logger = logging.getLogger("jagcall.audit")


# --- security events (accounts.security_events) --------------------------------------------

_EVENT_FIELDS = ("event", "user_id", "email", "organization_id", "ip", "user_agent", "request_id", "resource_type", "resource_id")


def _security_outcome(kind: str) -> str:
    verb = kind.rsplit(".", 1)[-1]
    if verb.endswith("failed") or verb.endswith("broken"):
        return Outcome.FAILED
    if verb.endswith(("refused", "rejected", "denied", "exceeded")):
        return Outcome.DENIED
    return Outcome.SUCCESS


def _security_action(kind: str) -> str:
    action = re.sub(r"[^a-z0-9_.]", "_", str(kind or "").lower()).strip("._")
    action = re.sub(r"\.+", ".", action)
    if not ACTION_FORMAT.match(action):
        action = f"security.{action.replace('.', '_') or 'event'}"
        if not ACTION_FORMAT.match(action):
            action = "security.event"
    return action


def _security_actor(kind: str, event: dict, details: dict) -> Actor:
    """For an event given no actor: the person it is about, or nobody signed in (never the ambient request's)."""
    from accounts.models import User

    if kind == "api_key.rejected":
        return Actor.for_api_key_prefix(str(details.get("prefix") or ""))
    acting_id = details.get("actor_id")
    if acting_id:  # someone acted on the event's user (e.g. support disabled an account)
        acting = User.objects.filter(pk=acting_id).only("id", "email", "is_staff").first()
        if acting is not None:
            return Actor.support(acting) if acting.is_staff else Actor.for_user(acting)
        return Actor(type=ActorType.USER, key=f"user:{acting_id}")
    if event.get("user_id"):
        return Actor(
            type=ActorType.USER, label=event.get("email") or "", key=f"user:{event['user_id']}", user_id=event["user_id"]
        )
    if event.get("ip") is None and event.get("request_id") is None:
        return Actor.system()
    # Nobody signed in: the email as typed is what an investigator needs.
    return Actor.anonymous(label=event.get("email") or "")


def audit_record_security_event(*, event: dict, actor=None) -> AuditEvent | None:
    """Record one security event (accounts.security_events.emit) as an audit event.

    The action is the event's name (``user.login_failed``); names ending in
    failed/broken are outcome ``failed``, refused/rejected/denied/exceeded
    ``denied``. Sign-ins and other events about a person alone have no
    organization: they go to the platform chain.

    [!!] Failures that come with a request are bounded (``_failure_admitted``):
    past the first few of a window for one target, None is returned and the
    event is only counted, for one summary record after the window.
    """
    kind = str(event.get("event") or "")
    details = {k: v for k, v in event.items() if k not in _EVENT_FIELDS}
    if not _failure_admitted(kind, event, details):
        return None
    return _record_security_event(kind, event, details, principal=actor)


def _record_security_event(kind: str, event: dict, details: dict, principal=None) -> AuditEvent:
    # [!!] The actor the event was given (a Principal), else the person it is about, else nobody.
    actor = resolve_actor(principal, None) if principal is not None else _security_actor(kind, event, details)
    details.pop("actor_id", None)
    if event.get("email") and event.get("email") != actor.label:
        details["email"] = event["email"]
    resource_type, resource_id = event.get("resource_type") or "", event.get("resource_id") or ""
    from jagcall.kernel.logging import current_request_id

    request_id = event.get("request_id") or current_request_id()
    return _append(
        organization_id=event.get("organization_id") or None,
        actor=actor,
        action=_security_action(kind),
        outcome=_security_outcome(kind),
        resource_type=resource_type,
        resource_id=resource_id,
        changes=None,
        metadata=details,
        ip=event.get("ip"),
        user_agent=event.get("user_agent") or "",
        request_id="" if request_id == "-" else request_id,
    )


# --- bounding floods of failures -----------------------------------------------------------
#
# A flood of failed sign-ins, refused tokens, invalid SSO responses or refused (rate-limited)
# requests must not write one audit row per request, least of all in an organization's chain.
# Per (kind, target, window) the first AUDIT_FAILURES_RECORDED_PER_WINDOW are recorded one by
# one; the rest are counted in Redis, and after the window one summary record carries the count
# (``audit_record_failure_summaries``, run every minute by Celery beat). The target is the
# organization, else the person, else the email typed, else what a refusal names, else the
# client. Platform events (no organization) also have a ceiling per kind and window over all
# targets together (AUDIT_FAILURES_RECORDED_PER_KIND), so spraying many emails or addresses is
# bounded too. Failures without a request (jobs, e.g. a broken chain) are always recorded.
# If Redis cannot be reached every failure is recorded: a log with too much beats one with gaps.

_FAILURES_KEY = "jc:audit:failures"
_FAILURES_PENDING = f"{_FAILURES_KEY}:pending"  # sorted set: summary bucket -> end of its window
# Summaries are written this long after their window ends, so a count still being added to is never read.
FAILURE_SUMMARY_GRACE_SECONDS = 5

def _failures_redis() -> redis.Redis:
    return cache_redis(decode_responses=True)


def _is_failure(kind: str, event: dict) -> bool:
    came_with_a_request = bool(event.get("ip") or event.get("request_id"))
    return came_with_a_request and _security_outcome(kind) in (Outcome.FAILED, Outcome.DENIED)


def _failure_target(event: dict, details: dict) -> str:
    if event.get("organization_id"):
        return f"organization:{event['organization_id']}"
    if event.get("user_id"):
        return f"user:{event['user_id']}"
    if event.get("email"):
        return f"email:{str(event['email']).strip().lower()}"
    named = details.get("target") or details.get("route")
    if named:
        return f"named:{named}"
    return f"client:{details.get('client') or event.get('ip') or ''}"


def _bucket(kind: str, target: str, window_start: int) -> str:
    # Hashed: targets are emails and addresses typed by strangers, of any length.
    return hashlib.sha256(f"{kind}\x1f{target}\x1f{window_start}".encode()).hexdigest()[:40]


# Kinds bounded by a window and count of their own instead of AUDIT_FAILURE_WINDOW_SECONDS and
# AUDIT_FAILURES_RECORDED_PER_WINDOW: (window in seconds, recorded one by one per window and target).
FAILURE_BOUNDS_BY_KIND: dict[str, tuple[int, int]] = {
    # One record per (provider, reason, client) and minute; the rest of the minute in its summary.
    "webhook.signature_refused": (60, 1),
}


def _failure_bounds(kind: str) -> tuple[int, int]:
    window, per_window = FAILURE_BOUNDS_BY_KIND.get(
        kind, (settings.AUDIT_FAILURE_WINDOW_SECONDS, settings.AUDIT_FAILURES_RECORDED_PER_WINDOW)
    )
    return max(1, int(window)), int(per_window)


def _failure_admitted(
    kind: str, event: dict, details: dict, *, actor: Actor | None = None, about: dict | None = None
) -> bool:
    """True: record this event now. False: it was counted into its window's summary instead.

    ``actor`` (the one the event was given) and ``about`` (what the summary
    should say besides the count) are kept for a summary of one target.
    """
    if not _is_failure(kind, event):
        return True
    window, per_window = _failure_bounds(kind)
    window_start = int(time.time()) // window * window
    expiry = 2 * window + 3600  # outlives the window until its summary is written
    target = _failure_target(event, details)
    platform = not event.get("organization_id")
    buckets = [(_bucket(kind, target, window_start), per_window, target)]
    if platform:
        buckets.append((_bucket(kind, "*", window_start), settings.AUDIT_FAILURES_RECORDED_PER_KIND, "*"))
    try:
        client = _failures_redis()
        with client.pipeline(transaction=False) as pipe:
            for bucket, _limit, _target in buckets:
                pipe.incr(f"{_FAILURES_KEY}:{bucket}:seen")
                pipe.expire(f"{_FAILURES_KEY}:{bucket}:seen", expiry)
            seen = pipe.execute()[::2]
        for (bucket, limit, bucket_target), count in zip(buckets, seen):
            if int(count) > int(limit):
                _fold_into_summary(
                    client, bucket=bucket, kind=kind, target=bucket_target, event=event,
                    window_start=window_start, window=window, expiry=expiry, actor=actor, about=about,
                )
                return False
    except (redis.RedisError, OSError):
        logger.warning("audit failure counting unavailable; recording %s individually", kind, exc_info=True)
    return True


def _fold_into_summary(
    client, *, bucket, kind, target, event, window_start, window, expiry, actor=None, about=None
) -> None:
    key = f"{_FAILURES_KEY}:{bucket}"
    folded = client.incr(f"{key}:folded")
    client.expire(f"{key}:folded", expiry)
    if folded == 1:
        # What the summary will say: this kind, for this target, in this window (not a person's IP or request).
        summary = {
            "event": kind,
            "organization_id": event.get("organization_id") if target != "*" else None,
            "user_id": event.get("user_id") if target != "*" else None,
            "email": event.get("email") if target != "*" else None,
            "target": target,
            "window_start": window_start,
            "window_seconds": window,
        }
        if target != "*":
            if actor is not None:
                summary["actor"] = dataclasses.asdict(actor)
            if about:
                summary["about"] = about
        client.set(f"{key}:summary", json.dumps(summary, default=str), ex=expiry, nx=True)
        client.zadd(_FAILURES_PENDING, {bucket: window_start + window}, nx=True)


def audit_record_failure_summaries(*, now: float | None = None) -> int:
    """Write one summary record per (kind, target, window) whose failures were folded; how many were written.

    A summary's action and outcome are those of the failures it stands for;
    its metadata says ``summary: true``, the window and ``count``: how many
    were not recorded one by one (``seen``: how many there were in all).
    """
    now = time.time() if now is None else now
    client = _failures_redis()
    written = 0
    for bucket in client.zrangebyscore(_FAILURES_PENDING, "-inf", now - FAILURE_SUMMARY_GRACE_SECONDS):
        if not client.zrem(_FAILURES_PENDING, bucket):
            continue  # another run took it: each summary is written once
        key = f"{_FAILURES_KEY}:{bucket}"
        raw, folded, seen = client.mget(f"{key}:summary", f"{key}:folded", f"{key}:seen")
        client.delete(f"{key}:summary", f"{key}:folded")
        if raw is None or not folded:
            continue
        summary = json.loads(raw)
        start = datetime.fromtimestamp(summary["window_start"], tz=UTC)
        end = datetime.fromtimestamp(summary["window_start"] + summary["window_seconds"], tz=UTC)
        details = {
            "summary": True,
            "count": int(folded),
            "window_start": start.isoformat(),
            "window_end": end.isoformat(),
        }
        if summary["target"] == "*":
            details["targets"] = "many (over the platform's ceiling for this kind)"
        else:
            details["seen"] = int(seen or folded)
            details.update(summary.get("about") or {})
        event = {
            "event": summary["event"],
            "organization_id": summary["organization_id"],
            "user_id": summary["user_id"],
            "email": summary["email"],
            "ip": None,
            "user_agent": "",
            "request_id": None,
        }
        actor = Actor(**summary["actor"]) if summary.get("actor") else None
        _record_security_event(summary["event"], event, details, principal=actor)
        written += 1
    return written


# --- refused webhooks (jagcall.kernel.webhooks.signals.webhook_refused) ----------------------


def audit_record_webhook_refused(
    *, provider: str, reason: str, path: str, remote_addr: str | None, request_id: str | None, request=None
) -> AuditEvent | None:
    """A webhook refused for its signature, as ``webhook.signature_refused`` (outcome denied), bounded.

    The actor is the provider's webhook principal (what the request claimed
    to be); the organization is none (unknown before a signature holds), so
    it goes to the platform chain. [!!] At most one record per (provider,
    reason, client address) and minute; the rest are counted into one
    summary written after the minute (``audit_record_failure_summaries``),
    whose metadata carries the provider, reason, client and ``count``.
    None when this refusal was counted rather than recorded.
    """
    from accounts.principals import Principal
    from accounts.security_events import client_ip

    ip = (client_ip(request) if request is not None else None) or remote_addr or None
    provider, reason = str(provider)[:40], str(reason)[:20]
    event = {
        "event": "webhook.signature_refused",
        "user_id": None,
        "email": None,
        "organization_id": None,
        "ip": ip,
        "user_agent": request.META.get("HTTP_USER_AGENT", "")[:300] if request is not None else "",
        "request_id": request_id,
        "resource_type": "webhook",
        "resource_id": provider,
    }
    details = {
        "provider": provider,
        "reason": reason,
        "path": str(path or "")[:300],
        "target": f"{provider}:{reason}:{ip}",  # what the flood bounds count per window
    }
    actor = Actor.from_principal(Principal.webhook(provider))
    about = {"provider": provider, "reason": reason, "client": ip}
    if not _failure_admitted(event["event"], event, details, actor=actor, about=about):
        return None
    return _record_security_event(event["event"], event, details, principal=actor)


# --- events announced by other code ---------------------------------------------------------


def audit_record_activity(
    *, action, organization, request, actor, resource_type, resource_id, before, after, metadata, outcome
) -> AuditEvent:
    """An accounts service's change (accounts.activity), in the service's transaction.

    Who did it is the ``actor`` the service was given (accounts.principals):
    the same service called from a request or a task records the same kind
    of actor.
    """
    # [!!] The actor is the one the service was given (an accounts Principal, built once at
    # the edge); only a change made with no actor at all falls back to the request's.
    if actor is not None:
        who = resolve_actor(actor, request)
    else:
        who = actor_from_request(request) if request is not None else Actor.system()
    return audit_record(
        action=action,
        organization=organization,
        request=request,
        actor=who,
        resource_type=resource_type,
        resource_id=resource_id,
        outcome=outcome,
        changes=audit_changes(before or {}, after or {}) if (before or after) else None,
        metadata=metadata,
    )


ADMIN_VERBS = {1: "created", 2: "updated", 3: "deleted"}  # django.contrib.admin.models ADDITION, CHANGE, DELETION


def audit_record_admin_change(*, log_entry) -> AuditEvent | None:
    """One back-office add, change or delete (Django writes a LogEntry for each), as ``<model>.<verb>``.

    The organization is the object's own (or the object, for an
    organization); the actor is the staff member, recorded as support.
    """
    if log_entry.action_flag not in ADMIN_VERBS:
        return None
    from accounts.models import Organization
    from jagcall.kernel.logging import current_request

    model = log_entry.content_type.model_class() if log_entry.content_type_id else None
    organization = None
    if model is not None and log_entry.object_id:
        if model is Organization:
            organization = Organization.objects.filter(pk=log_entry.object_id).first()
        elif any(f.name == "organization" for f in model._meta.get_fields()):
            row = model._base_manager.filter(pk=log_entry.object_id).values("organization_id").first()
            if row is not None:
                organization = Organization.objects.filter(pk=row["organization_id"]).first()
    resource_type = model._meta.model_name if model is not None else "object"
    return audit_record(
        action=f"{resource_type}.{ADMIN_VERBS[log_entry.action_flag]}",
        organization=organization,
        request=current_request(),
        actor=Actor.support(log_entry.user),
        resource_type=resource_type,
        resource_id=str(log_entry.object_id or ""),
        metadata={"via": "back_office", "object": log_entry.object_repr, "change": log_entry.get_change_message()},
    )


def audit_record_denial(*, request, status: int) -> AuditEvent:
    """A refused request (403/404) on an organization's page or the API, as ``access.denied``.

    Written to the organization the caller acted as: the API credential's, or
    the page's when the caller belongs to it; otherwise to the platform chain,
    so a probe of another organization's ids never writes to that
    organization's log.
    """
    from accounts.models import Organization
    from accounts.selectors import membership_for_user

    match = request.resolver_match
    organization = getattr(request, "organization", None)
    slug = match.kwargs.get("org_slug")
    if organization is None and slug and getattr(request.user, "is_authenticated", False):
        candidate = Organization.objects.filter(slug=slug).first()
        if candidate is not None and membership_for_user(organization=candidate, user=request.user):
            organization = candidate  # a member refused a page of their own organization
    metadata = {"route": match.view_name, "method": request.method, "status": status, "path": request.path[:300]}
    if organization is None and slug:
        metadata["organization_slug"] = str(slug)[:60]
    object_ids = [str(v) for k, v in match.kwargs.items() if k != "org_slug"]
    return audit_record(
        action="access.denied",
        organization=organization,
        request=request,
        outcome=Outcome.DENIED,
        resource_type=match.url_name.replace("-", "_")[:60] if match.url_name else "",
        resource_id=object_ids[0] if object_ids else "",
        metadata=metadata,
    )
