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
INSERT, in the caller's transaction. A second event of the same chain in the
same transaction is one INSERT: the lock is still held, so the head is the
event just written (``_HeadCache``). [!!] The chain's lock is held until that
transaction ends, so other writers to the same organization's chain wait
for it: record the event late in the service, not before slow work.
"""

from __future__ import annotations

import hashlib
import logging
import re

from django.db import DEFAULT_DB_ALIAS, connections, router, transaction
from django.utils import timezone

from compliance import diff
from compliance.actors import Actor, actor_from_request, resolve_actor
from compliance.chain import (
    GENESIS_HASH,
    canonical_json,
    chain_lock_id,
    clean_text,
    event_hash,
    json_safe,
    normalize_ip,
    redact,
    uuid7,
)
from compliance.models import AuditChainCheckpoint, AuditEvent, Outcome

logger = logging.getLogger("jagcall.audit")

ACTION_FORMAT = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
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
    from jagcall.kernel.logging import current_request_id

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


class _HeadMarker:
    """Put on the transaction's on-commit list beside an appended event.

    Django drops it when the transaction ends (commit or rollback) and when a savepoint that was
    open at the append is rolled back: so while it is on the list, the event is still in the
    transaction and so is the chain's lock, taken in the same (sub)transaction."""

    __slots__ = ()

    def __call__(self) -> None:
        return None


class _HeadCache:
    """The head each chain was left at by this transaction's appends, per connection."""

    ATTRIBUTE = "_jagcall_audit_heads"

    @staticmethod
    def _key(organization_id) -> str | None:
        return None if organization_id is None else str(organization_id)  # callers pass a UUID or its text

    @classmethod
    def get(cls, connection, organization_id) -> tuple[int, str] | None:
        heads = getattr(connection, cls.ATTRIBUTE, None)
        key = cls._key(organization_id)
        entry = heads.get(key) if heads else None
        if entry is None:
            return None
        marker, seq, hash_ = entry
        if not any(callback is marker for _savepoints, callback, _robust in connection.run_on_commit):
            del heads[key]  # that transaction ended, or the event was rolled back with a savepoint
            return None
        return seq, hash_

    @classmethod
    def forget(cls, using: str = DEFAULT_DB_ALIAS) -> None:
        """After rows were changed behind the service's back (tests that tamper with the chain)."""
        connections[using].__dict__.pop(cls.ATTRIBUTE, None)

    @classmethod
    def put(cls, connection, organization_id, seq: int, hash_: str) -> None:
        marker = _HeadMarker()
        transaction.on_commit(marker, using=connection.alias)
        heads = connection.__dict__.setdefault(cls.ATTRIBUTE, {})
        if len(heads) >= 32:  # a long-lived connection of a worker that served many organizations
            live = {callback for _savepoints, callback, _robust in connection.run_on_commit}
            for stale in [key for key, (old, _seq, _hash) in heads.items() if old not in live]:
                del heads[stale]
        heads[cls._key(organization_id)] = (marker, seq, hash_)


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
    insert_sql, fields = _insert_sql()
    # savepoint=False: inside the caller's transaction this adds no round trips;
    # outside one it is a transaction of its own (the advisory lock needs one).
    with transaction.atomic(using=using, savepoint=False):
        with connection.cursor() as cursor:
            head = _HeadCache.get(connection, organization_id)
            if head is not None:
                seq, prev_hash = head
            else:
                head_sql, head_params = _head_sql(organization_id)
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
        _HeadCache.put(connection, organization_id, event.seq, event.hash)
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
