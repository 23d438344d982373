"""Knowledge's Celery tasks (the "embeddings" queue): thin wrappers around knowledge.services.

[!!] One task per document. Tasks are acknowledged late and given back to
the queue when their worker dies (CELERY_TASK_ACKS_LATE,
CELERY_TASK_REJECT_ON_WORKER_LOST), and a document shows its chunks only
once all of them are stored, so a killed worker leaves the document to be
processed again, never half indexed. The sweeper queues again what a lost
message left behind.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

logger = logging.getLogger("jagcall.knowledge")


@shared_task(
    bind=True,
    soft_time_limit=settings.KNOWLEDGE_TASK_TIME_LIMIT,
    time_limit=settings.KNOWLEDGE_TASK_TIME_LIMIT + 30,
)
def document_process_task(self, organization_id: str, document_id: str) -> str:
    from knowledge.models import Document, DocumentStatus
    from knowledge.services import document_fail, document_process

    document = Document.objects.for_org(organization_id).filter(pk=document_id).first()
    if document is None:
        return "gone"
    if document.status == DocumentStatus.READY:
        # A message delivered again after its work was done (a reprocess or the sweeper queues it anew).
        return "ready"
    try:
        return document_process(document)
    except SoftTimeLimitExceeded:
        document_fail(
            document,
            "timeout",
            "Processing this document took too long. Split it into smaller files and upload them again.",
        )
        return "failed"


@shared_task
def documents_requeue_stalled_task() -> int:
    from knowledge.services import documents_requeue_stalled

    return documents_requeue_stalled()
