"""Knowledge bases: upload limits, processing time and how retrieval searches."""

from __future__ import annotations

import re

from jagcall.kernel.env import env
from jagcall.settings.workers import CELERY_BROKER_TRANSPORT_OPTIONS

# The largest document accepted, in bytes (C19): exactly this passes, one byte more is a 413. nginx's
# client_max_body_size on the upload routes is this plus KNOWLEDGE_UPLOAD_OVERHEAD_BYTES (deploy/nginx).
KNOWLEDGE_MAX_UPLOAD_BYTES = env("KNOWLEDGE_MAX_UPLOAD_BYTES", default=20 * 1024 * 1024, cast=int)
# Room for the multipart envelope around the file: a request body larger than the file limit plus this
# is refused before any of it is read.
KNOWLEDGE_UPLOAD_OVERHEAD_BYTES = 256 * 1024
# Reading one PDF's text (a child process) is stopped after this many seconds.
KNOWLEDGE_PDF_TIMEOUT_SECONDS = env("KNOWLEDGE_PDF_TIMEOUT_SECONDS", default=120, cast=int)
# One document's processing task: soft limit, then killed. [!!] It stays under the broker's visibility
# timeout, so a running document is never delivered to a second worker.
KNOWLEDGE_TASK_TIME_LIMIT = env("KNOWLEDGE_TASK_TIME_LIMIT", default=480, cast=int)
if KNOWLEDGE_TASK_TIME_LIMIT + 30 >= CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]:
    CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] = KNOWLEDGE_TASK_TIME_LIMIT + 120
# Retrieval reads every chunk (exact search) when the knowledge bases searched hold at most this many, and
# walks the HNSW index (pgvector iterative scans) above it (docs/knowledge.md).
KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS = env("KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS", default=5_000, cast=int)

# The web process's front door refuses a body over these before reading it (jagcall/kernel/serving.py
# BodyLimit): the knowledge base's upload routes (API and portal) take one document and its envelope.
REQUEST_BODY_LIMITS = [
    (
        re.compile(r"^/(?:api/v1/knowledge-bases|o/[^/]+/knowledge)/"),
        KNOWLEDGE_MAX_UPLOAD_BYTES + KNOWLEDGE_UPLOAD_OVERHEAD_BYTES,
        f"This upload is larger than {KNOWLEDGE_MAX_UPLOAD_BYTES // (1024 * 1024)} MB, the most a document may be. "
        "Split it into smaller files.",
    ),
]
