"""The Celery app. Configuration lives in settings (CELERY_*)."""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jagcall.settings")

app = Celery("jagcall")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in ("default", "transcription", "embeddings", "webhooks")]
app.autodiscover_tasks()


@app.task(name="jagcall.ping")
def ping(value: str = "pong") -> str:
    """Round trip through the broker; used by operators and the queue test."""
    return value
