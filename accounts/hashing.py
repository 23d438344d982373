"""The one digest of a bearer secret (API keys, invitation tokens, OAuth tokens).

[!!] Secrets handed to a person or a client are stored only as this digest
and looked up by it. They carry 256 bits of randomness, so a fast,
unsalted SHA-256 is enough (no dictionary to attack), and equal secrets
must map to equal digests for the lookup to work.
"""

from __future__ import annotations

import hashlib


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
