"""The signals the audit log listens to; each receiver hands its event to one service.

- accounts' one outlet (accounts.activity.audit): every change an accounts
  service announces, and every security event,
- every add, change and delete in the back office (Django's LogEntry),
- every webhook refused for its signature (jagcall.kernel.webhooks), bounded.

accounts imports no other app: it sends signals and these receivers record
them, in the sender's transaction when there is one.
[!!] A failure to record is not swallowed: the action being recorded fails
with it, rather than happening unrecorded.
"""

from __future__ import annotations


def record_audit(sender, kind, **payload) -> None:
    """accounts' one outlet: a service's change, or a security event."""
    from compliance.services import audit_record_activity, audit_record_security_event

    payload.pop("signal", None)
    if kind == "security":
        audit_record_security_event(event=payload["event"], actor=payload.get("actor"))
    else:
        audit_record_activity(**payload)


def record_admin_change(sender, instance, created, **kwargs) -> None:
    if not created:
        return
    from compliance.services import audit_record_admin_change

    audit_record_admin_change(log_entry=instance)


def record_webhook_refused(sender, *, provider, reason, path, remote_addr, request_id, request=None, **kwargs) -> None:
    """The webhook base refused a request for its signature (jagcall.kernel.webhooks.signals)."""
    from compliance.services import audit_record_webhook_refused

    audit_record_webhook_refused(
        provider=provider, reason=reason, path=path, remote_addr=remote_addr, request_id=request_id, request=request
    )


def connect() -> None:
    from django.contrib.admin.models import LogEntry
    from django.db.models.signals import post_save

    from accounts.activity import audit
    from jagcall.kernel.webhooks.signals import webhook_refused

    audit.connect(record_audit, weak=False, dispatch_uid="audit-record-accounts")
    post_save.connect(record_admin_change, sender=LogEntry, weak=False, dispatch_uid="audit-record-admin-change")
    webhook_refused.connect(record_webhook_refused, weak=False, dispatch_uid="audit-record-webhook-refused")
