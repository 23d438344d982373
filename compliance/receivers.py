"""The signals the audit log listens to; each receiver hands its event to one service.

- every security event (accounts.security_events.emit),
- every change an accounts service announces (accounts.activity),
- every add, change and delete in the back office (Django's LogEntry).

accounts imports no other app: it sends signals and these receivers record
them, in the sender's transaction when there is one.
[!!] A failure to record is not swallowed: the action being recorded fails
with it, rather than happening unrecorded.
"""

from __future__ import annotations


def record_security_event(sender, event, **kwargs) -> None:
    from compliance.services import audit_record_security_event

    audit_record_security_event(event=event)


def record_activity(sender, **change) -> None:
    from compliance.services import audit_record_activity

    change.pop("signal", None)
    audit_record_activity(**change)


def record_admin_change(sender, instance, created, **kwargs) -> None:
    if not created:
        return
    from compliance.services import audit_record_admin_change

    audit_record_admin_change(log_entry=instance)


def connect() -> None:
    from django.contrib.admin.models import LogEntry
    from django.db.models.signals import post_save

    from accounts.activity import activity
    from accounts.security_events import security_event

    security_event.connect(record_security_event, weak=False, dispatch_uid="audit-record-security-event")
    activity.connect(record_activity, weak=False, dispatch_uid="audit-record-activity")
    post_save.connect(record_admin_change, sender=LogEntry, weak=False, dispatch_uid="audit-record-admin-change")
