"""Writes to the audit log. ``audit_record`` is the one way in.

Every app records what it did with one call inside its own service, in the
same transaction as the change (so a rolled-back change leaves no event):

    before = audit_snapshot(membership)
    membership.role = role
    membership.save(update_fields=["role", "updated_at"])
    audit_record(
        action="member.role_changed", organization=organization, request=request,
        actor=actor, resource=membership, changes=audit_changes(before, membership, fields=["role"]),
    )

The actor, IP address, user agent and request id come from ``request`` when
it is given (DRF's Request or Django's), the organization from
``request.organization`` when it is not given.

Cost: the advisory lock, one index probe for the chain's head and one
INSERT, in the caller's transaction. [!!] The chain's lock is held until that
transaction ends, so other writers to the same organization's chain wait
for it: record the event late in the service, not before slow work.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connections, router, transaction
from django.utils import timezone

from compliance import diff
from compliance.actors import Actor, actor_from_request, resolve_actor
from compliance.chain import (
    GENESIS_HASH,
    canonical_json,
    chain_key,
    chain_lock_id,
    clean_text,
    event_hash,
    json_safe,
    normalize_ip,
    redact,
    uuid7,
)
from compliance.models import ActorType, AuditChainCheckpoint, AuditEvent, Outcome

logger = logging.getLogger("jagcall.audit")

ACTION_FORMAT = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
PURGE_BATCH_SIZE = 5000
# A person paging or re-filtering the log records one audit.viewed per filter set in this window.
VIEW_RECORD_WINDOW_SECONDS = 300


# --- change sets ---------------------------------------------------------------------


def audit_snapshot(instance):
    """A copy of a model instance to diff against after changing it (nothing is decrypted)."""
    return diff.snapshot(instance)


def audit_changes(before, after, fields=None) -> dict:
    """The redacted change set ``{field: {"before": …, "after": …}}`` of two states.

    ``before`` / ``after``: model instances (either may be None for a
    creation or deletion; computed by django-auditlog's model diff) or plain
    dicts. ``fields`` limits the comparison to those names.
    [!!] Fields named like secret/password/token/hash and encrypted fields
    are recorded as changed, never with their values.
    """
    from django.db.models import Model

    if isinstance(before, Model) or isinstance(after, Model):
        return diff.model_changes(before, after, fields=fields)
    return diff.dict_changes(before, after, fields=fields)


# --- recording -----------------------------------------------------------------------


def _resource_type_of(instance) -> str:
    explicit = getattr(type(instance), "audit_resource_type", None)
    if explicit:
        return explicit
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(instance).__name__).lower()


def _request_facts(request) -> tuple[str | None, str, str]:
    """(ip, user agent, request id) of a request, or of the running task/request context."""
    from jagcall.logging import current_request_id

    request_id = current_request_id()
    request_id = "" if request_id == "-" else request_id
    if request is None:
        return None, "", request_id
    from accounts.security_events import client_ip

    return (
        client_ip(request),
        request.META.get("HTTP_USER_AGENT", ""),
        getattr(request, "request_id", None) or request_id,
    )


def audit_record(
    *,
    action: str,
    organization=None,
    request=None,
    actor=None,
    resource=None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    outcome: str = Outcome.SUCCESS,
    changes: dict | None = None,
    metadata: dict | None = None,
) -> AuditEvent:
    """Append one event to its organization's chain (the platform's when there is none).

    - ``action``: ``resource.verb``, lower case (``member.role_changed``).
    - ``actor``: an ``compliance.actors.Actor``, a User, an ApiKey or an OAuth
      application; by default the request's credential, or ``system``
      without a request.
    - ``resource``: a model instance (type and id are taken from it, and it
      must belong to ``organization``), or ``resource_type``/``resource_id``.
    - ``changes``: from ``audit_changes``; ``metadata``: any JSON details.
      Both are redacted again here by key name.
    """
    if not ACTION_FORMAT.match(action or ""):
        raise ValueError(f"Audit action {action!r} must look like 'resource.verb' (lower case).")
    if outcome not in Outcome.values:
        raise ValueError(f"Audit outcome must be one of {Outcome.values}, not {outcome!r}.")
    django_request = getattr(request, "_request", request)
    if organization is None and django_request is not None:
        organization = getattr(django_request, "organization", None)
    organization_id = organization.pk if organization is not None else None
    if resource is not None:
        resource_org = getattr(resource, "organization_id", None)
        if resource_org is not None and resource_org != organization_id:
            raise ValueError(f"{resource!r} does not belong to the event's organization {organization_id}")
        resource_type = resource_type or _resource_type_of(resource)
        resource_id = resource_id or str(resource.pk)
    who = resolve_actor(actor, request)
    details = dict(metadata or {})
    if who.on_behalf_of:
        details.setdefault("on_behalf_of", who.on_behalf_of)
    ip, user_agent, request_id = _request_facts(django_request)
    return _append(
        organization_id=organization_id,
        actor=who,
        action=action,
        outcome=outcome,
        resource_type=resource_type or "",
        resource_id=resource_id or "",
        changes=changes,
        metadata=details,
        ip=ip,
        user_agent=user_agent,
        request_id=request_id,
    )


def _head_sql(organization_id) -> tuple[str, list]:
    """Lock the chain, then read its head: the newest of its last event and its last purge checkpoint.

    Two statements sent in one round trip. Each statement of a batch takes its
    own snapshot when it starts (READ COMMITTED), so the SELECT, which starts
    once the lock is held, sees every event committed by the previous holder.
    """
    events, checkpoints = AuditEvent._meta.db_table, AuditChainCheckpoint._meta.db_table
    where, params = ("organization_id IS NULL", []) if organization_id is None else ("organization_id = %s", [organization_id])
    sql = (
        "SELECT pg_advisory_xact_lock(%s); "
        f'SELECT seq, hash FROM ((SELECT seq, hash FROM "{events}" WHERE {where} ORDER BY seq DESC LIMIT 1) '
        f'UNION ALL (SELECT seq, hash FROM "{checkpoints}" WHERE {where} ORDER BY seq DESC LIMIT 1)) AS head '
        "ORDER BY seq DESC LIMIT 1"
    )
    return sql, [chain_lock_id(organization_id), *params, *params]


_INSERT_FIELDS = None


def _insert_sql() -> tuple[str, list]:
    global _INSERT_FIELDS
    if _INSERT_FIELDS is None:
        fields = [f for f in AuditEvent._meta.concrete_fields]
        columns = ", ".join(f'"{f.column}"' for f in fields)
        placeholders = ", ".join(["%s"] * len(fields))
        _INSERT_FIELDS = (f'INSERT INTO "{AuditEvent._meta.db_table}" ({columns}) VALUES ({placeholders})', fields)
    return _INSERT_FIELDS


def _append(
    *, organization_id, actor: Actor, action, outcome, resource_type, resource_id, changes, metadata, ip, user_agent,
    request_id,
) -> AuditEvent:
    event = AuditEvent(
        id=uuid7(),
        organization_id=organization_id,
        actor_type=actor.type,
        actor_id=actor.user_id,
        actor_key=clean_text(actor.key, 100),
        actor_label=clean_text(actor.label, 254),
        api_key_prefix=clean_text(actor.api_key_prefix, 16),
        ip=normalize_ip(ip),
        user_agent=clean_text(user_agent, 300),
        action=action,
        resource_type=clean_text(resource_type, 60),
        resource_id=clean_text(resource_id, 100),
        outcome=outcome,
        changes=json_safe(redact(changes)) if changes else None,
        metadata=json_safe(redact(metadata or {})),
        request_id=clean_text(request_id, 128),
    )
    using = router.db_for_write(AuditEvent)
    connection = connections[using]
    head_sql, head_params = _head_sql(organization_id)
    insert_sql, fields = _insert_sql()
    # savepoint=False: inside the caller's transaction this adds no round trips;
    # outside one it is a transaction of its own (the advisory lock needs one).
    with transaction.atomic(using=using, savepoint=False):
        with connection.cursor() as cursor:
            cursor.execute(head_sql, head_params)
            cursor.nextset()
            row = cursor.fetchone()
            seq, prev_hash = (int(row[0]), row[1]) if row else (0, GENESIS_HASH)
            event.seq = seq + 1
            event.prev_hash = prev_hash
            event.occurred_at = timezone.now()  # taken under the lock: time order follows seq within a chain
            event.hash = event_hash(event)
            # A plain INSERT of the prepared values: the ORM's save() would only add compile time here.
            cursor.execute(insert_sql, [f.get_db_prep_save(getattr(event, f.attname), connection) for f in fields])
    event._state.adding = False
    event._state.db = using
    return event


def audit_record_read(*, request, organization, filters: dict, via: str) -> AuditEvent | None:
    """Record ``audit.viewed``: once per person (or key) and filter set per VIEW_RECORD_WINDOW_SECONDS.

    Paging through one result set, or reloading it, records one event, not
    one per page; any other filter set records a new one.
    """
    from django.core.cache import cache

    actor = actor_from_request(request)
    shown = json_safe(filters)
    fingerprint = hashlib.sha256(
        canonical_json({"org": str(organization.pk), "actor": actor.key or actor.label, "filters": shown, "via": via})
    ).hexdigest()
    try:
        first = cache.add(f"audit:viewed:{fingerprint}", 1, VIEW_RECORD_WINDOW_SECONDS)
    except Exception:  # no cache: record every read rather than none
        logger.warning("audit.viewed de-duplication unavailable; recording this read", exc_info=True)
        first = True
    if not first:
        return None
    return audit_record(
        action="audit.viewed",
        organization=organization,
        request=request,
        actor=actor,
        resource_type="audit_log",
        resource_id=str(organization.pk),
        metadata={"filters": shown, "via": via},
    )


def audit_record_export(*, request, organization, filters: dict, export_format: str) -> AuditEvent:
    return audit_record(
        action="audit.exported",
        organization=organization,
        request=request,
        resource_type="audit_log",
        resource_id=str(organization.pk),
        metadata={"filters": json_safe(filters), "format": export_format},
    )


# --- security events (accounts.security_events) --------------------------------------------

_EVENT_FIELDS = ("event", "user_id", "email", "organization_id", "ip", "user_agent", "request_id")


def _security_outcome(kind: str) -> str:
    verb = kind.rsplit(".", 1)[-1]
    if verb.endswith("failed") or verb.endswith("broken"):
        return Outcome.FAILED
    if verb.endswith(("refused", "rejected", "denied")):
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


def _security_resource(kind: str, event: dict, details: dict) -> tuple[str, str]:
    if kind.startswith("api_key."):
        return "api_key", str(details.get("api_key_id") or details.get("prefix") or "")
    if kind.startswith("api.token"):
        return "api_token", str(details.get("jti") or "")
    if kind.startswith("oauth.") and details.get("application_id"):
        return "oauth_application", str(details["application_id"])
    if kind == "sso.configured":
        return "saml_configuration", str(event.get("organization_id") or "")
    if event.get("user_id"):
        return "user", str(event["user_id"])
    return "", ""


def _security_actor(kind: str, event: dict, details: dict) -> Actor:
    from accounts.models import User

    if kind == "api_key.rejected":
        return Actor.for_api_key_prefix(str(details.get("prefix") or ""))
    # An API key or OAuth application acting (e.g. a key creating another): the credential is the actor.
    from jagcall.logging import current_request

    request = current_request()
    credential = getattr(request, "auth", None) if request is not None else None
    if getattr(credential, "api_key", None) is not None or getattr(credential, "application", None) is not None:
        return actor_from_request(request)
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


def audit_record_security_event(*, event: dict) -> AuditEvent:
    """Record one security event (accounts.security_events.emit) as an audit event.

    The action is the event's name (``user.login_failed``); names ending in
    failed/broken are outcome ``failed``, refused/rejected/denied ``denied``.
    Sign-ins and other events about a person alone have no organization:
    they go to the platform chain.
    """
    kind = str(event.get("event") or "")
    details = {k: v for k, v in event.items() if k not in _EVENT_FIELDS}
    actor = _security_actor(kind, event, details)
    details.pop("actor_id", None)
    if event.get("email") and event.get("email") != actor.label:
        details["email"] = event["email"]
    resource_type, resource_id = _security_resource(kind, event, details)
    from jagcall.logging import current_request_id

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


# --- events announced by other code ---------------------------------------------------------


def audit_record_activity(
    *, action, organization, request, actor, resource_type, resource_id, before, after, metadata, outcome
) -> AuditEvent:
    """An accounts service's change (accounts.activity), in the service's transaction.

    Who did it is the request's credential (a person, an API key, an OAuth
    application, support staff in the back office); the service's ``actor``
    counts only outside a request (commands, tasks) or before anyone is
    signed in (accepting an invitation by creating the account).
    """
    who = actor_from_request(request) if request is not None else None
    if who is None or who.type == ActorType.ANONYMOUS:
        who = resolve_actor(actor, None)
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
    from jagcall.logging import current_request

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


# --- retention -----------------------------------------------------------------------------


@dataclass
class PurgeResult:
    cutoff: object
    events_deleted: int = 0
    checkpoints: int = 0
    chains: list = field(default_factory=list)
    finished: bool = True


def _chains_with_events() -> list:
    """Every chain key: None (platform) and each organization's id."""
    from accounts.models import Organization

    return [None, *Organization.objects.order_by("created_at", "id").values_list("id", flat=True)]


def _purge_batch(*, organization_id, cutoff, batch_size: int) -> tuple[int, bool]:
    """Delete the oldest expired run of one chain, at most ``batch_size`` events.

    Returns (events deleted, whether more may follow). [!!] Deletes only a
    leading run of the chain (lowest seq) whose every event is older than
    ``cutoff``: an event at or after the cutoff stops the run, so nothing
    newer is ever removed, and the chain stays a contiguous suffix that
    verification can resume from the checkpoint written just before.
    """
    using = router.db_for_write(AuditEvent)
    table = AuditEvent._meta.db_table
    chain_sql, chain_params = (
        ("organization_id IS NULL", []) if organization_id is None else ("organization_id = %s", [organization_id])
    )
    with transaction.atomic(using=using):
        with connections[using].cursor() as cursor:
            # Purges of one chain run one at a time. Writers are not held up: they take the
            # chain's head (the newest row, else the newest checkpoint), and this transaction
            # commits the checkpoint and the DELETE together, so a writer sees either the
            # deleted rows or the checkpoint that replaces them, never neither.
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [chain_lock_id(f"purge:{chain_key(organization_id)}")])
            cursor.execute(
                f'SELECT seq, hash, occurred_at FROM "{table}" WHERE {chain_sql} ORDER BY seq LIMIT %s',
                [*chain_params, batch_size],
            )
            rows = cursor.fetchall()
            segment = []
            for row in rows:
                if row[2] >= cutoff:
                    break
                segment.append(row)
            if not segment:
                return 0, False
            last_seq, last_hash, last_at = segment[-1]
            AuditChainCheckpoint.objects.using(using).create(
                organization_id=organization_id, seq=last_seq, hash=last_hash, occurred_at=last_at,
                events_purged=len(segment),
            )
            # Only this transaction may delete (the trigger of migration 0002 checks it).
            cursor.execute("SET LOCAL jagcall.audit_purge = 'on'")
            cursor.execute(
                f'DELETE FROM "{table}" WHERE {chain_sql} AND seq >= %s AND seq <= %s',
                [*chain_params, segment[0][0], last_seq],
            )
            deleted = cursor.rowcount
            # Off again at once: when a caller's transaction surrounds this one, the flag must not outlive the DELETE.
            cursor.execute("SET LOCAL jagcall.audit_purge = 'off'")
    more = len(segment) == len(rows) == batch_size
    return deleted, more


def audit_purge_expired(
    *, now=None, retention_days: int | None = None, batch_size: int = PURGE_BATCH_SIZE, time_budget_seconds: float | None = None
) -> PurgeResult:
    """Delete events older than the retention (AUDIT_RETENTION_DAYS), chain by chain, in batches.

    Each batch is its own transaction: checkpoint first, then the DELETE.
    With ``time_budget_seconds`` it stops between batches when the budget is
    spent (``finished`` False); the next run carries on.
    """
    from django.conf import settings

    now = now or timezone.now()
    retention_days = settings.AUDIT_RETENTION_DAYS if retention_days is None else retention_days
    if retention_days < 1:
        raise ValueError("AUDIT_RETENTION_DAYS must be at least 1.")
    result = PurgeResult(cutoff=now - timedelta(days=retention_days))
    started = time.monotonic()
    for organization_id in _chains_with_events():
        more = True
        chain_deleted = 0
        while more:
            if time_budget_seconds is not None and time.monotonic() - started > time_budget_seconds:
                result.finished = False
                break
            deleted, more = _purge_batch(organization_id=organization_id, cutoff=result.cutoff, batch_size=batch_size)
            if deleted:
                chain_deleted += deleted
                result.checkpoints += 1
        if chain_deleted:
            result.events_deleted += chain_deleted
            result.chains.append((str(organization_id) if organization_id else None, chain_deleted))
        if not result.finished:
            break
    logger.info(
        "audit purge: %s events deleted older than %s, %s checkpoints",
        result.events_deleted, result.cutoff.isoformat(), result.checkpoints,
        extra={"events_deleted": result.events_deleted, "finished": result.finished},
    )
    return result


# --- verification alerts ---------------------------------------------------------------------


def audit_chains_verify_and_alert(*, organization=None) -> list:
    """Verify chains (all, or one organization's); log and emit a security event for each broken one."""
    from compliance.selectors import audit_chains_verify

    reports = audit_chains_verify(organization=organization)
    for report in reports:
        _alert_if_broken(report)
    return reports


def audit_chain_verify_and_alert(*, organization_id):
    """Verify one chain (``None``: the platform's); log and alert if it is broken. Returns its report."""
    from accounts.models import Organization
    from compliance.selectors import audit_chain_verify

    label = "platform"
    if organization_id is not None:
        label = Organization.objects.filter(pk=organization_id).values_list("slug", flat=True).first() or str(organization_id)
    report = audit_chain_verify(organization_id=organization_id, chain_label=label)
    _alert_if_broken(report)
    return report


def _alert_if_broken(report) -> None:
    from accounts.models import Organization
    from accounts.security_events import emit

    broken = report.broken
    if broken is None:
        return
    logger.error(
        "audit chain broken: organization=%s seq=%s event=%s: %s",
        report.chain_label, broken.seq, broken.event_id, broken.reason,
        extra={"organization_id": report.organization_id, "seq": broken.seq, "event_id": broken.event_id},
    )
    chain_organization = Organization.objects.filter(pk=report.organization_id).first() if report.organization_id else None
    emit("audit.chain_broken", organization=chain_organization, seq=broken.seq, event_id=broken.event_id, reason=broken.reason)


def audit_chain_ids() -> list:
    """Every chain: None (the platform's) and each organization's id."""
    return _chains_with_events()
