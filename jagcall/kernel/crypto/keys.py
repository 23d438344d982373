"""The key hierarchy (reads only): one master keyset wraps each organization's data keysets.

- The master keyset (Tink AES256_GCM) comes from the environment: inline
  JSON, a file, or a KMS key URI (then the KMS does the wrapping). In
  development it is generated under DATA_DIR on first use.
- Each organization has an AEAD keyset (AES256_GCM) for fields and a
  streaming AEAD keyset (AES256_GCM_HKDF_1MB) for files, stored wrapped by
  the master keyset with associated data naming the organization and kind.
- Platform keysets (e.g. "secrets" for sealed secrets) are wrapped the same
  way under their name.
- Unwrapped primitives are cached in this process for
  JAGCALL_KEY_CACHE_SECONDS; a master keyset read from a file is re-read
  when the file changes, checked at the same interval. Key material is never
  written in clear.

[!!] Reading never creates keys: a missing keyset raises KeysetMissing.
Keys are created by ``services`` at write time or at set-up.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from pathlib import Path

import tink
from django.conf import settings
from django.utils import timezone
from tink import aead, cleartext_keyset_handle, core, secret_key_access, streaming_aead
from tink.proto import aes_gcm_hkdf_streaming_pb2, aes_gcm_pb2, tink_pb2

from jagcall.kernel.crypto.errors import KeyConfigurationError, KeysetDestroyed, KeysetMissing  # noqa: F401  (also raised from here)
from jagcall.kernel.crypto.models import OrganizationKeyset, PlatformKeyset

aead.register()
streaming_aead.register()

logger = logging.getLogger(__name__)

AEAD_TEMPLATE = aead.aead_key_templates.AES256_GCM
STREAMING_TEMPLATE = streaming_aead.streaming_aead_key_templates.AES256_GCM_HKDF_1MB
AES_GCM_KEY = "type.googleapis.com/google.crypto.tink.AesGcmKey"
STREAMING_KEY = "type.googleapis.com/google.crypto.tink.AesGcmHkdfStreamingKey"
KINDS = {"aead": (AEAD_TEMPLATE, AES_GCM_KEY), "streaming": (STREAMING_TEMPLATE, STREAMING_KEY)}


# --- keyset helpers -------------------------------------------------------------


def keyset_proto(handle: tink.KeysetHandle) -> tink_pb2.Keyset:
    return tink_pb2.Keyset.FromString(tink.proto_keyset_format.serialize(handle, secret_key_access.TOKEN))


def handle_from_proto(keyset: tink_pb2.Keyset) -> tink.KeysetHandle:
    return cleartext_keyset_handle.from_keyset(keyset)


def new_handle(kind: str) -> tink.KeysetHandle:
    return tink.new_keyset_handle(KINDS[kind][0])


def add_primary_key(handle: tink.KeysetHandle, kind: str) -> tink.KeysetHandle:
    """A copy of ``handle`` with a fresh key of ``kind`` made primary; old keys stay for decryption."""
    template = KINDS[kind][0]
    keyset = keyset_proto(handle)
    used = {key.key_id for key in keyset.key}
    key_id = int.from_bytes(os.urandom(4), "big") & 0x7FFFFFFF
    while key_id == 0 or key_id in used:
        key_id = int.from_bytes(os.urandom(4), "big") & 0x7FFFFFFF
    key = keyset.key.add()
    key.key_data.CopyFrom(core.Registry.new_key_data(template))
    key.status = tink_pb2.ENABLED
    key.key_id = key_id
    key.output_prefix_type = template.output_prefix_type
    keyset.primary_key_id = key_id
    return handle_from_proto(keyset)


def remove_keys(handle: tink.KeysetHandle, key_ids: set[int]) -> tink.KeysetHandle:
    keyset = keyset_proto(handle)
    if keyset.primary_key_id in key_ids:
        raise ValueError("the primary key cannot be retired")
    kept = [key for key in keyset.key if key.key_id not in key_ids]
    del keyset.key[:]
    keyset.key.extend(kept)
    return handle_from_proto(keyset)


def key_ids(handle: tink.KeysetHandle) -> list[int]:
    return [info.key_id for info in handle.keyset_info().key_info]


def primary_key_id(handle: tink.KeysetHandle) -> int:
    return handle.keyset_info().primary_key_id


def assert_aes256(handle: tink.KeysetHandle, kind: str, what: str) -> None:
    """[!!] Every key must be AES-256 of the expected kind: no silent downgrade to AES-128."""
    expected = KINDS[kind][1]
    for key in keyset_proto(handle).key:
        if key.key_data.type_url != expected:
            raise KeyConfigurationError(f"{what} must contain only {expected.rsplit('.', 1)[-1]} keys, found {key.key_data.type_url}")
        if kind == "aead":
            size = len(aes_gcm_pb2.AesGcmKey.FromString(key.key_data.value).key_value)
        else:
            parsed = aes_gcm_hkdf_streaming_pb2.AesGcmHkdfStreamingKey.FromString(key.key_data.value)
            size = min(len(parsed.key_value), parsed.params.derived_key_size)
        if size != 32:
            raise KeyConfigurationError(f"{what} must use 256-bit keys; key {key.key_id} has {size * 8} bits")


# --- the master keyset ----------------------------------------------------------


class MasterKey:
    """The master keyset of this process, loaded from settings.

    [!!] A keyset read from a file is a cache like any other: when the file
    changes (``rotate_keys --master`` writes it), this process picks the new
    keyset up within JAGCALL_KEY_CACHE_SECONDS, so no process keeps wrapping
    under a retired master key for longer than the retirement grace period.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._aead = None
        self._handle: tink.KeysetHandle | None = None
        self.source = ""
        self._file: Path | None = None
        self._file_mtime_ns: int | None = None
        self._recheck_at = 0.0

    def load(self, *, force: bool = False):
        with self._lock:
            if self._aead is not None and not force:
                return self._aead
            uri = settings.JAGCALL_MASTER_KEY_URI
            if uri:
                self._aead, self._handle, self.source = _kms_aead(uri), None, f"KMS key {uri}"
                self._file = self._file_mtime_ns = None
                return self._aead
            handle, self.source, self._file = _read_master_keyset()
            assert_aes256(handle, "aead", "The master keyset")
            self._handle = handle
            self._aead = handle.primitive(aead.Aead)
            self._file_mtime_ns = self._file.stat().st_mtime_ns if self._file is not None else None
            self._recheck_at = time.monotonic() + settings.JAGCALL_KEY_CACHE_SECONDS
            return self._aead

    def _reload_if_file_changed(self) -> None:
        if self._file is None or time.monotonic() < self._recheck_at:
            return
        try:
            changed = self._file.stat().st_mtime_ns != self._file_mtime_ns
        except OSError:
            changed = False  # keep what is loaded; the start-up check reports a missing file
        if changed:
            self.load(force=True)
        else:
            self._recheck_at = time.monotonic() + settings.JAGCALL_KEY_CACHE_SECONDS

    @property
    def aead(self):
        if self._aead is None:
            return self.load()
        self._reload_if_file_changed()
        return self._aead

    @property
    def handle(self) -> tink.KeysetHandle | None:
        self.aead  # noqa: B018  (loads, or reloads a changed file)
        return self._handle

    @property
    def primary_key_id(self) -> int | None:
        return primary_key_id(self.handle) if self.handle is not None else None

    def changed_at(self):
        """When the master keyset file last changed (a new primary, a retirement), or None if not file-based.

        The keys that are not primary stopped being primary no later than this.
        """
        self.aead  # noqa: B018
        if self._file is None or self._file_mtime_ns is None:
            return None
        return datetime.fromtimestamp(self._file_mtime_ns / 1e9, tz=dt_timezone.utc)


def _read_master_keyset() -> tuple[tink.KeysetHandle, str, Path | None]:
    inline = settings.JAGCALL_MASTER_KEYSET
    path = settings.JAGCALL_MASTER_KEYSET_FILE
    file = None
    if inline:
        text, source = inline, "JAGCALL_MASTER_KEYSET"
    elif path:
        file = Path(path)
        if not file.exists() and settings.JAGCALL_GENERATE_DEV_KEYS:
            write_master_keyset(file, new_handle("aead"))
            logger.warning("generated a development master keyset at %s", file)
        if not file.exists():
            raise KeyConfigurationError(f"JAGCALL_MASTER_KEYSET_FILE points at {file}, which does not exist.")
        text, source = file.read_text(), f"JAGCALL_MASTER_KEYSET_FILE ({file})"
    else:
        raise KeyConfigurationError(
            "No master keyset: set JAGCALL_MASTER_KEYSET, JAGCALL_MASTER_KEYSET_FILE or JAGCALL_MASTER_KEY_URI."
        )
    try:
        handle = tink.json_proto_keyset_format.parse(text, secret_key_access.TOKEN)
    except Exception as exc:  # TinkError, JSON and protobuf errors alike
        raise KeyConfigurationError(f"{source} is not a valid Tink keyset in JSON: {exc}") from None
    return handle, source, file


def write_master_keyset(file: Path, handle: tink.KeysetHandle) -> None:
    """Write atomically with owner-only permissions (development and file-based deployments)."""
    file.parent.mkdir(parents=True, exist_ok=True)
    temp = file.with_suffix(".tmp")
    temp.write_text(serialize_master_keyset(handle))
    temp.chmod(0o600)
    temp.replace(file)


def serialize_master_keyset(handle: tink.KeysetHandle) -> str:
    return tink.json_proto_keyset_format.serialize(handle, secret_key_access.TOKEN)


def _kms_aead(uri: str):
    try:
        client = tink.kms_client_from_uri(uri)
    except tink.TinkError:
        client = None
        credentials = settings.JAGCALL_KMS_CREDENTIALS_FILE or None
        try:
            if uri.startswith("gcp-kms://"):
                from tink.integration import gcpkms

                client = gcpkms.GcpKmsClient(uri, credentials)
            elif uri.startswith("aws-kms://"):
                from tink.integration import awskms

                client = awskms.AwsKmsClient(uri, credentials)
        except ImportError as exc:
            raise KeyConfigurationError(f"JAGCALL_MASTER_KEY_URI needs the KMS client library: {exc}") from None
        if client is None:
            raise KeyConfigurationError(
                f"JAGCALL_MASTER_KEY_URI {uri!r}: use a gcp-kms:// or aws-kms:// key URI."
            ) from None
    return client.get_aead(uri)


master = MasterKey()


# --- organization keysets ---------------------------------------------------------


def wrap_ad(organization_id, kind: str) -> bytes:
    return f"jagcall:org-keyset:v1|{kind}|{organization_id}".encode()


def wrap(handle: tink.KeysetHandle, organization_id, kind: str) -> bytes:
    return tink.proto_keyset_format.serialize_encrypted(handle, master.aead, wrap_ad(organization_id, kind))


def unwrap(blob: bytes, organization_id, kind: str) -> tink.KeysetHandle:
    try:
        handle = tink.proto_keyset_format.parse_encrypted(bytes(blob), master.aead, wrap_ad(organization_id, kind))
    except tink.TinkError:
        raise KeyConfigurationError(
            f"The master keyset ({master.source}) cannot unwrap the {kind} keys of organization "
            f"{organization_id}: it is not the master keyset these keys were wrapped with."
        ) from None
    assert_aes256(handle, kind, f"Organization {organization_id}'s {kind} keyset")
    return handle


@dataclass(frozen=True)
class OrganizationKeys:
    organization_id: object
    aead: object
    streaming: object
    aead_primary_id: int
    streaming_primary_id: int
    aead_key_ids: tuple[int, ...]
    streaming_key_ids: tuple[int, ...]


_cache: dict = {}
_cache_lock = threading.Lock()


def _cache_key(organization_id) -> uuid.UUID:
    return organization_id if isinstance(organization_id, uuid.UUID) else uuid.UUID(str(organization_id))


def evict(organization_id=None) -> None:
    """Forget unwrapped keys: one organization's, or (no argument) every organization's and platform keyset's."""
    with _cache_lock:
        if organization_id is None:
            _cache.clear()
            _platform_cache.clear()
        else:
            _cache.pop(_cache_key(organization_id), None)


def organization_keys(organization_id) -> OrganizationKeys:
    """The organization's unwrapped primitives.

    Raises KeysetMissing when the organization has no keys yet (nothing can
    have been encrypted for it) and KeysetDestroyed once they were shredded.
    """
    key = _cache_key(organization_id)
    now = time.monotonic()
    hit = _cache.get(key)  # a single dict read is atomic: no lock on the hot path
    if hit is not None and hit[0] > now:
        return hit[1]
    row = OrganizationKeyset.objects.filter(organization_id=key).first()
    if row is None:
        raise KeysetMissing(f"Organization {organization_id} has no encryption keys, so nothing of it can be decrypted.")
    if row.destroyed_at is not None:
        raise KeysetDestroyed(f"The keys of organization {organization_id} were destroyed on {row.destroyed_at:%Y-%m-%d}.")
    aead_handle = unwrap(row.aead_keyset, organization_id, "aead")
    streaming_handle = unwrap(row.streaming_keyset, organization_id, "streaming")
    keys = OrganizationKeys(
        organization_id=organization_id,
        aead=aead_handle.primitive(aead.Aead),
        streaming=streaming_handle.primitive(streaming_aead.StreamingAead),
        aead_primary_id=primary_key_id(aead_handle),
        streaming_primary_id=primary_key_id(streaming_handle),
        aead_key_ids=tuple(key_ids(aead_handle)),
        streaming_key_ids=tuple(key_ids(streaming_handle)),
    )
    with _cache_lock:
        _cache[key] = (now + settings.JAGCALL_KEY_CACHE_SECONDS, keys)
    return keys


# --- platform keysets (not tied to one organization) -------------------------------


def platform_wrap_ad(name: str) -> bytes:
    return f"jagcall:platform-keyset:v1|{name}".encode()


def wrap_platform(handle: tink.KeysetHandle, name: str) -> bytes:
    return tink.proto_keyset_format.serialize_encrypted(handle, master.aead, platform_wrap_ad(name))


def unwrap_platform(blob: bytes, name: str) -> tink.KeysetHandle:
    try:
        handle = tink.proto_keyset_format.parse_encrypted(bytes(blob), master.aead, platform_wrap_ad(name))
    except tink.TinkError:
        raise KeyConfigurationError(
            f"The master keyset ({master.source}) cannot unwrap the platform keyset {name!r}."
        ) from None
    assert_aes256(handle, "aead", f"Platform keyset {name}")
    return handle


@dataclass(frozen=True)
class PlatformKeys:
    name: str
    aead: object
    primary_id: int
    key_ids: tuple[int, ...]


_platform_cache: dict = {}


def platform_keys(name: str) -> PlatformKeys:
    """A platform keyset's unwrapped primitive; KeysetMissing when it was never created."""
    now = time.monotonic()
    hit = _platform_cache.get(name)
    if hit is not None and hit[0] > now:
        return hit[1]
    row = PlatformKeyset.objects.filter(name=name).first()
    if row is None:
        raise KeysetMissing(f"The platform keyset {name!r} does not exist yet, so nothing sealed with it can exist.")
    handle = unwrap_platform(row.aead_keyset, name)
    keys = PlatformKeys(name=name, aead=handle.primitive(aead.Aead), primary_id=primary_key_id(handle),
                        key_ids=tuple(key_ids(handle)))
    with _cache_lock:
        _platform_cache[name] = (now + settings.JAGCALL_KEY_CACHE_SECONDS, keys)
    return keys


def evict_platform(name: str | None = None) -> None:
    with _cache_lock:
        if name is None:
            _platform_cache.clear()
        else:
            _platform_cache.pop(name, None)


# --- retirement timing ------------------------------------------------------------------


def retirement_grace():
    """How long a key must have stopped being primary before it may be retired.

    [!!] Longer than any cache of keys: a process that loaded the keys just
    before a rotation committed keeps encrypting under the old primary for up
    to JAGCALL_KEY_CACHE_SECONDS; the same again covers writes still in
    flight when their cache expired, and a minute covers clock differences
    between hosts. Only after that can a count of ciphertexts under the old
    key be final.
    """
    return timedelta(seconds=2 * settings.JAGCALL_KEY_CACHE_SECONDS + 60)


def retirable_from(stopped_being_primary_at):
    """The moment keys that stopped being primary at the given time may be retired (None: not known, now)."""
    if stopped_being_primary_at is None:
        return timezone.now()
    return stopped_being_primary_at + retirement_grace()
