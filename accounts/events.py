"""Live events for an organization, pushed to its websocket group.

Services call ``publish_org_event`` inside their transaction; the push
happens on commit, so a rolled-back change is never announced.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from django.db import transaction
from django.utils import timezone

logger = logging.getLogger(__name__)


def org_group_name(organization_id, topic: str = "events") -> str:
    return f"org-{organization_id}.{topic}"


def _send(organization_id, event: str, payload: dict) -> None:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "org.event", "event": event, "payload": payload, "at": timezone.now().isoformat()}
    try:
        async_to_sync(layer.group_send)(org_group_name(organization_id), message)
    except Exception:  # a live notice must never break the write that caused it
        logger.exception("could not publish %s for organization %s", event, organization_id)


def publish_org_event(organization_id, event: str, payload: dict) -> None:
    transaction.on_commit(lambda: _send(organization_id, event, payload))
