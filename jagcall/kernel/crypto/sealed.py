"""Sealed secrets: short strings that belong to a person rather than an organization.

Used where a library stores a secret for us as text (allauth's TOTP secret
and recovery-code seed): ``seal`` returns ``jcs1:<key id>:<base64 ciphertext>``
under the platform keyset "secrets" (Tink AES256_GCM, wrapped by the master
keyset), bound by associated data to its purpose. ``unseal`` fails closed.
"""

from __future__ import annotations

import base64
import threading
import time

import tink
from django.conf import settings
from django.db import IntegrityError, transaction
from tink import aead

from jagcall.kernel.crypto import keys
from jagcall.kernel.crypto.fields import DecryptionError

PREFIX = "jcs1:"
NAME = "secrets"
_lock = threading.Lock()
_cached: tuple[float, object, int] | None = None


def _wrap_ad(name: str) -> bytes:
    return f"jagcall:platform-keyset:v1|{name}".encode()


def _row():
    from jagcall.kernel.crypto.models import PlatformKeyset

    row = PlatformKeyset.objects.filter(name=NAME).first()
    if row is not None:
        return row
    handle = keys.new_handle("aead")
    row = PlatformKeyset(
        name=NAME,
        aead_keyset=tink.proto_keyset_format.serialize_encrypted(handle, keys.master.aead, _wrap_ad(NAME)),
        master_key_id=keys.master.primary_key_id,
    )
    try:
        with transaction.atomic():
            row.save(force_insert=True)
    except IntegrityError:
        row = PlatformKeyset.objects.get(name=NAME)
    return row


def unwrap(row) -> tink.KeysetHandle:
    try:
        handle = tink.proto_keyset_format.parse_encrypted(bytes(row.aead_keyset), keys.master.aead, _wrap_ad(row.name))
    except tink.TinkError:
        raise keys.KeyConfigurationError(
            f"The master keyset ({keys.master.source}) cannot unwrap the platform keyset {row.name!r}."
        ) from None
    keys.assert_aes256(handle, "aead", f"Platform keyset {row.name}")
    return handle


def wrap(handle, name: str = NAME) -> bytes:
    return tink.proto_keyset_format.serialize_encrypted(handle, keys.master.aead, _wrap_ad(name))


def _primitive():
    global _cached
    now = time.monotonic()
    cached = _cached
    if cached is not None and cached[0] > now:
        return cached[1], cached[2]
    with _lock:
        handle = unwrap(_row())
        _cached = (now + settings.JAGCALL_KEY_CACHE_SECONDS, handle.primitive(aead.Aead), keys.primary_key_id(handle))
        return _cached[1], _cached[2]


def evict() -> None:
    global _cached
    _cached = None


def seal(text: str, *, purpose: str) -> str:
    primitive, _primary = _primitive()
    ciphertext = primitive.encrypt(text.encode("utf-8"), f"jagcall:sealed:v1|{purpose}".encode())
    return PREFIX + base64.urlsafe_b64encode(ciphertext).decode("ascii")


def unseal(value: str, *, purpose: str) -> str:
    if not isinstance(value, str) or not value.startswith(PREFIX):
        raise DecryptionError(f"a {purpose} secret is not sealed (refusing to use a plaintext value)")
    primitive, _primary = _primitive()
    try:
        plaintext = primitive.decrypt(base64.urlsafe_b64decode(value[len(PREFIX):]), f"jagcall:sealed:v1|{purpose}".encode())
    except (tink.TinkError, ValueError):
        raise DecryptionError(f"a sealed {purpose} secret does not decrypt") from None
    return plaintext.decode("utf-8")


def sealed_key_id(value: str) -> int | None:
    if not isinstance(value, str) or not value.startswith(PREFIX):
        return None
    raw = base64.urlsafe_b64decode(value[len(PREFIX):])
    return int.from_bytes(raw[1:5], "big")


def primary_key_id() -> int:
    return _primitive()[1]


def platform_keys_rotate() -> None:
    from jagcall.kernel.crypto.models import PlatformKeyset
    from django.utils import timezone

    with transaction.atomic():
        row = PlatformKeyset.objects.select_for_update().get(pk=_row().pk)
        handle = keys.add_primary_key(unwrap(row), "aead")
        row.aead_keyset = wrap(handle, row.name)
        row.master_key_id = keys.master.primary_key_id
        row.rotated_at = timezone.now()
        row.save(update_fields=["aead_keyset", "master_key_id", "rotated_at"])
    evict()


def platform_keys_rewrap() -> int:
    from jagcall.kernel.crypto.models import PlatformKeyset

    count = 0
    with transaction.atomic():
        for row in PlatformKeyset.objects.select_for_update():
            row.aead_keyset = wrap(unwrap(row), row.name)
            row.master_key_id = keys.master.primary_key_id
            row.save(update_fields=["aead_keyset", "master_key_id"])
            count += 1
    evict()
    return count


# --- other apps register where they keep sealed values, so reencrypt covers them ---------
# name -> (iterate() yielding objects, reseal(obj) rewriting its sealed values under the primary key)
SOURCES: dict = {}


def register_source(name: str, *, iterate, reseal, key_ids) -> None:
    SOURCES[name] = (iterate, reseal, key_ids)
