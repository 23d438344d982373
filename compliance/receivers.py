"""Every security event (accounts.security_events.emit) and every change an
accounts service announces (accounts.activity) becomes an audit event.

accounts imports no other app; it sends the ``security_event`` signal and
this receiver records it, in the emitter's transaction when there is one.
[!!] A failure to record is not swallowed: the action being recorded fails
with it, rather than happening unrecorded.
"""

from __future__ import annotations


def record_security_event(sender, event, **kwargs) -> None:
    from compliance.services import audit_record_security_event

    audit_record_security_event(event=event)


def connect() -> None:
    from accounts.security_events import security_event

    security_event.connect(record_security_event, weak=False, dispatch_uid="audit-record-security-event")
    connect_activity()
    connect_admin()


def record_activity(
    sender, *, action, organization, request, actor, resource_type, resource_id, before, after, metadata, outcome,
    **kwargs,
) -> None:
    """An accounts service's change (accounts.activity) as an audit event, in the service's transaction.

    Who did it is the request's credential (a person, an API key, an OAuth
    application, support staff in the back office); the service's ``actor``
    counts only outside a request (commands, tasks) or before anyone is
    signed in (accepting an invitation by creating the account).
    """
    from compliance.actors import actor_from_request, resolve_actor
    from compliance.models import ActorType
    from compliance.services import audit_changes, audit_record

    who = actor_from_request(request) if request is not None else None
    if who is None or who.type == ActorType.ANONYMOUS:
        who = resolve_actor(actor, None)
    audit_record(
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


def connect_activity() -> None:
    from accounts.activity import activity

    activity.connect(record_activity, weak=False, dispatch_uid="audit-record-activity")


ADMIN_VERBS = {1: "created", 2: "updated", 3: "deleted"}  # django.contrib.admin.models ADDITION, CHANGE, DELETION


def record_admin_change(sender, instance, created, **kwargs) -> None:
    """Every add, change and delete made in the back office (Django writes a LogEntry for each).

    The organization is the object's own (or the object, for an
    organization); the actor is the staff member, recorded as support.
    """
    if not created or instance.action_flag not in ADMIN_VERBS:
        return
    from accounts.models import Organization
    from compliance.actors import Actor
    from compliance.services import audit_record
    from jagcall.logging import current_request

    model = instance.content_type.model_class() if instance.content_type_id else None
    organization = None
    if model is not None and instance.object_id:
        if model is Organization:
            organization = Organization.objects.filter(pk=instance.object_id).first()
        elif any(f.name == "organization" for f in model._meta.get_fields()):
            row = model._base_manager.filter(pk=instance.object_id).values("organization_id").first()
            if row is not None:
                organization = Organization.objects.filter(pk=row["organization_id"]).first()
    resource_type = model._meta.model_name if model is not None else "object"
    audit_record(
        action=f"{resource_type}.{ADMIN_VERBS[instance.action_flag]}",
        organization=organization,
        request=current_request(),
        actor=Actor.support(instance.user),
        resource_type=resource_type,
        resource_id=str(instance.object_id or ""),
        metadata={"via": "back_office", "object": instance.object_repr, "change": instance.get_change_message()},
    )


def connect_admin() -> None:
    from django.contrib.admin.models import LogEntry
    from django.db.models.signals import post_save

    post_save.connect(record_admin_change, sender=LogEntry, weak=False, dispatch_uid="audit-record-admin-change")
