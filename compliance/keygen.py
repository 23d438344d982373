"""Make the key that signs the audit chain digests: ``python -m compliance.keygen``.

Prints ``AUDIT_DIGEST_SIGNING_KEY=<base64 private key>`` (keep it secret, like
the other keys) and its public key, which is all a verifier needs. Runs without
Django settings, so it works before the environment is complete.

``python -m compliance.keygen --public <base64 private key>`` prints the public key of a key.
"""

from __future__ import annotations

import base64
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def public_key_of(private_b64: str) -> str:
    private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(private_b64, validate=True))
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def new_private_key() -> str:
    raw = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw).decode()


def main(argv: list[str]) -> int:
    if argv[:1] == ["--public"]:
        if len(argv) != 2:
            print("usage: python -m compliance.keygen --public <base64 private key>", file=sys.stderr)
            return 64
        try:
            print(public_key_of(argv[1]))
        except ValueError as exc:
            print(f"not a base64 Ed25519 private key of 32 bytes: {exc}", file=sys.stderr)
            return 65
        return 0
    private = new_private_key()
    print(f"AUDIT_DIGEST_SIGNING_KEY={private}")
    print(f"# public key (give it to whoever verifies the digests): {public_key_of(private)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
