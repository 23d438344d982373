"""Sealed secrets: short strings that belong to a person rather than an organization.

Used where a library stores a secret for us as text (allauth's TOTP secret
and recovery-code seed). ``seal`` returns ``jcs2:<base64 Tink ciphertext>``
under the platform keyset "secrets" (Tink AES256_GCM, wrapped by the master
keyset). [!!] The associated data names the purpose and the owner, the row
the value belongs to (for a second factor: the user, the factor's type and
the slot in its data), so a sealed value copied onto another row does not
decrypt. ``unseal`` fails closed with DecryptionError.

``jcs1:`` values, sealed before owners were bound, name only their purpose.
``unseal`` opens them only when the caller says ``allow_unbound=True``
during the upgrade; ``manage.py reencrypt`` reseals every one of them bound
to its owner (see docs/security/encryption.md).
"""

from __future__ import annotations

import base64
import binascii

import tink

from jagcall.kernel.crypto import keys
from jagcall.kernel.crypto.errors import DecryptionError, KeysetMissing
from jagcall.kernel.crypto.services import platform_keys_for_write

PREFIX = "jcs2:"
UNBOUND_PREFIX = "jcs1:"
NAME = "secrets"


def _associated_data(purpose: str, owner: str) -> bytes:
    if not owner or "|" in purpose:
        raise ValueError("a sealed secret needs a purpose without '|' and the owner it belongs to")
    return f"jagcall:sealed:v2|{purpose}|{owner}".encode()


def _unbound_associated_data(purpose: str) -> bytes:
    return f"jagcall:sealed:v1|{purpose}".encode()


def seal(text: str, *, purpose: str, owner: str) -> str:
    """Encrypt ``text`` for ``owner`` (e.g. ``"user:42|totp|secret"``) under the primary key."""
    primitive = platform_keys_for_write(NAME).aead  # the first seal creates the keyset; reads never do
    ciphertext = primitive.encrypt(text.encode("utf-8"), _associated_data(purpose, owner))
    return PREFIX + base64.urlsafe_b64encode(ciphertext).decode("ascii")


def is_sealed(value) -> bool:
    return isinstance(value, str) and (value.startswith(PREFIX) or value.startswith(UNBOUND_PREFIX))


def is_bound(value) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def unseal(value: str, *, purpose: str, owner: str, allow_unbound: bool = False) -> str:
    if is_bound(value):
        body, associated_data = value[len(PREFIX):], _associated_data(purpose, owner)
    elif allow_unbound and isinstance(value, str) and value.startswith(UNBOUND_PREFIX):
        body, associated_data = value[len(UNBOUND_PREFIX):], _unbound_associated_data(purpose)
    else:
        raise DecryptionError(f"a {purpose} secret of {owner} is not sealed for its owner (refusing to use it)")
    try:
        primitive = keys.platform_keys(NAME).aead
    except KeysetMissing:
        raise DecryptionError(f"a sealed {purpose} secret of {owner} exists but no sealing keys do") from None
    try:
        plaintext = primitive.decrypt(base64.urlsafe_b64decode(body), associated_data)
    except (tink.TinkError, ValueError, binascii.Error):
        raise DecryptionError(
            f"a sealed {purpose} secret does not decrypt for {owner} (copied from another row, altered, or its key is gone)"
        ) from None
    return plaintext.decode("utf-8")


def sealed_key_id(value: str) -> int | None:
    """The platform key a sealed value was encrypted under (from its Tink prefix), or None if it is not sealed."""
    if not is_sealed(value):
        return None
    try:
        raw = base64.urlsafe_b64decode(value.split(":", 1)[1])
    except (ValueError, binascii.Error):
        return None
    return int.from_bytes(raw[1:5], "big") if len(raw) >= 5 else None


def primary_key_id() -> int | None:
    """The key new seals use, or None before anything was ever sealed."""
    try:
        return keys.platform_keys(NAME).primary_id
    except KeysetMissing:
        return None


def evict() -> None:
    keys.evict_platform(NAME)
