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

# sender=None; kwargs: action, organization, request, actor, resource_type,
# resource_id, before, after, metadata, outcome
activity = Signal()


def activity_record(
    action: str,
    *,
    organization,
    actor=None,
    resource=None,
    resource_type: str | None = None,
    resource_id=None,
    before: dict | None = None,
    after: dict | None = None,
    metadata: dict | None = None,
    outcome: str = "success",
) -> None:
    from jagcall.kernel.logging import current_request

    if resource is not None:
        resource_type = resource_type or getattr(type(resource), "audit_resource_type", None) or type(resource).__name__.lower()
        resource_id = resource_id or resource.pk
    activity.send(
        sender=None,
        action=action,
        organization=organization,
        request=current_request(),
        actor=actor,
        resource_type=resource_type or "",
        resource_id=str(resource_id) if resource_id is not None else "",
        before=before,
        after=after,
        metadata=metadata or {},
        outcome=outcome,
    )
