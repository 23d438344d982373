"""What people and credentials did: one signal the audit log records.

accounts imports no other app (ARCHITECTURE.md), so its services announce
each change they make with ``activity_record()`` and the compliance app's
receiver appends it to the organization's audit chain. The signal is sent
synchronously, inside the service's transaction: the event commits with
the change or not at all, and a failure to record fails the change.

Who did it is taken from the request being handled (its credential: a
person, an API key, an OAuth application, support staff in the back
office); ``actor`` is the fallback for work done outside a request
(commands, tasks). ``before``/``after`` hold only the fields that changed
and never secrets.
"""

from __future__ import annotations

from django.dispatch import Signal

# [!!] The one outlet of accounts for the audit log. sender=None; ``kind`` is
# "change" (a service's change: action, organization, request, actor,
# resource_type, resource_id, before, after, metadata, outcome) or "security"
# (a security event: event, actor). compliance connects one receiver.
audit = Signal()


def activity_record(
    action: str,
    *,
    organization,
    actor,
    resource_type: str,
    resource=None,
    resource_id=None,
    before: dict | None = None,
    after: dict | None = None,
    metadata: dict | None = None,
    outcome: str = "success",
) -> None:
    """Announce a change. The caller states the actor (a Principal) and the resource's type."""
    from jagcall.kernel.logging import current_request

    if not resource_type:
        raise ValueError("activity_record() needs the resource type, stated by the caller.")
    if resource is not None and resource_id is None:
        resource_id = resource.pk
    audit.send(
        sender=None,
        kind="change",
        action=action,
        organization=organization,
        request=current_request(),
        actor=actor,
        resource_type=resource_type,
        resource_id=str(resource_id) if resource_id is not None else "",
        before=before,
        after=after,
        metadata=metadata or {},
        outcome=outcome,
    )
