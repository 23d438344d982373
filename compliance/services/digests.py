"""The daily signed digest of every chain's head, written outside the audit table (compliance/digests.py)."""

from __future__ import annotations

import logging

from django.utils import timezone

from compliance.digests import append_digest, audit_chain_head, sign_head
from compliance.services.retention import audit_chain_ids

logger = logging.getLogger("jagcall.audit")


def audit_digests_write(*, now=None) -> list[dict]:
    """Sign each chain's head (the platform's and every organization's), append it to the
    chain's digest file and write it to the log. Returns the digests written.

    Nothing in the database changes: a digest is a statement about the log, kept where the
    log's database users cannot reach it.
    """
    signed_at = now or timezone.now()
    digests = []
    for organization_id in audit_chain_ids():
        head = audit_chain_head(organization_id=organization_id)
        digest = sign_head(organization_id=organization_id, head=head, signed_at=signed_at)
        path = append_digest(digest)
        # The second copy: the structured log, shipped off the host by the log pipeline.
        logger.info(
            "audit chain digest: organization=%s seq=%s hash=%s",
            digest["organization_id"] or "platform", digest["seq"], digest["hash"],
            extra={"audit_chain_digest": digest, "digest_file": str(path)},
        )
        digests.append(digest)
    return digests
