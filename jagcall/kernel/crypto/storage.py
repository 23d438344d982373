"""Encrypted file storage on top of any Django storage (local disk, S3-compatible).

Each file is written as
    b"jcf1" + 4-byte id of the streaming key + Tink streaming AEAD ciphertext
(AES256_GCM_HKDF, 1 MB segments) under the owning organization's streaming
keyset, with associated data binding it to the organization and the file's
name. Writing and reading are streamed segment by segment, so memory stays
flat whatever the file size.

Names must start with ``orgs/<organization uuid>/``; ``encrypted_upload_to``
builds such names. Encrypted files have no public URL: views that serve
them read and stream the plaintext after their own permission checks.
"""

from __future__ import annotations

import io
import os
import tempfile
import uuid

import tink
from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage
from django.utils.deconstruct import deconstructible
from django.utils.module_loading import import_string

from jagcall.kernel.crypto.keys import organization_keys

MAGIC = b"jcf1"
HEADER_SIZE = len(MAGIC) + 4
CHUNK = 1024 * 1024


class EncryptedFileError(Exception):
    pass


def _org_id_from_name(name: str) -> uuid.UUID:
    parts = name.replace("\\", "/").split("/")
    try:
        if parts[0] != "orgs":
            raise ValueError
        return uuid.UUID(parts[1])
    except (ValueError, IndexError):
        raise EncryptedFileError(f"encrypted files live under orgs/<organization id>/, not {name!r}") from None


def file_associated_data(name: str) -> bytes:
    return f"jagcall:file:v1|{_org_id_from_name(name)}|{name}".encode()


def encrypted_upload_to(instance, filename: str) -> str:
    """``upload_to`` for encrypted FileFields: a server-made name inside the organization's folder.

    Give such FileFields ``max_length=255``: the name is about 90 characters.
    """
    extension = "".join(ch for ch in os.path.splitext(filename)[1].lower() if ch.isalnum() or ch == ".")[:10]
    return f"orgs/{instance.organization_id}/{instance._meta.model_name}/{uuid.uuid4().hex}{extension}"


class _NonClosing(io.RawIOBase):
    """Lets Tink close its stream without closing our temporary file."""

    def __init__(self, target):
        self.target = target

    def writable(self):
        return True

    def write(self, data):
        return self.target.write(data)


@deconstructible
class EncryptedFileStorage(Storage):
    def __init__(self, backend: str | None = None, options: dict | None = None):
        self.backend_path = backend
        self.options = options

    @property
    def backend(self) -> Storage:
        if not hasattr(self, "_backend"):
            config = settings.JAGCALL_ENCRYPTED_FILES_STORAGE
            path = self.backend_path or config["BACKEND"]
            options = self.options if self.options is not None else config.get("OPTIONS", {})
            self._backend = import_string(path)(**options)
        return self._backend

    # --- writing -----------------------------------------------------------------
    def _save(self, name, content):
        organization_id = _org_id_from_name(name)
        keys = organization_keys(organization_id)
        with tempfile.TemporaryFile(dir=getattr(settings, "FILE_UPLOAD_TEMP_DIR", None)) as sealed:
            sealed.write(MAGIC + keys.streaming_primary_id.to_bytes(4, "big"))
            with keys.streaming.new_encrypting_stream(_NonClosing(sealed), file_associated_data(name)) as stream:
                if hasattr(content, "seek") and getattr(content, "seekable", lambda: True)():
                    content.seek(0)
                for chunk in content.chunks(CHUNK) if hasattr(content, "chunks") else iter(lambda: content.read(CHUNK), b""):
                    stream.write(chunk)
            sealed.seek(0)
            saved = self.backend.save(name, File(sealed, name=os.path.basename(name)))
        if saved != name:
            # The ciphertext is bound to ``name``; a renamed copy would not decrypt.
            self.backend.delete(saved)
            raise EncryptedFileError(f"the storage renamed {name!r} to {saved!r}; use unique names (encrypted_upload_to)")
        return name

    # --- reading ------------------------------------------------------------------
    def _open(self, name, mode="rb"):
        if "w" in mode or "a" in mode or "+" in mode:
            raise EncryptedFileError("encrypted files are written with save(), not opened for writing")
        raw = self.backend.open(name, "rb")
        header = raw.read(HEADER_SIZE)
        if len(header) != HEADER_SIZE or not header.startswith(MAGIC):
            raw.close()
            raise EncryptedFileError(f"{name} is not an encrypted file")
        keys = organization_keys(_org_id_from_name(name))
        try:
            stream = keys.streaming.new_decrypting_stream(raw, file_associated_data(name))
        except tink.TinkError:
            raw.close()
            raise EncryptedFileError(f"{name} does not decrypt for its organization") from None
        return File(_CheckedReader(stream, name), name=name)

    def key_id(self, name) -> int:
        with self.backend.open(name, "rb") as raw:
            header = raw.read(HEADER_SIZE)
        if not header.startswith(MAGIC):
            raise EncryptedFileError(f"{name} is not an encrypted file")
        return int.from_bytes(header[len(MAGIC):], "big")

    # --- the rest delegates --------------------------------------------------------
    def delete(self, name):
        return self.backend.delete(name)

    def exists(self, name):
        return self.backend.exists(name)

    def listdir(self, path):
        return self.backend.listdir(path)

    def size(self, name):
        """Size of the stored ciphertext (the plaintext is slightly smaller)."""
        return self.backend.size(name)

    def get_available_name(self, name, max_length=None):
        return self.backend.get_available_name(name, max_length=max_length)

    def path(self, name):
        raise NotImplementedError("encrypted files have no usable local path; open() them")

    def url(self, name):
        raise NotImplementedError("encrypted files have no public URL; stream them through a view that checks access")

    def get_modified_time(self, name):
        return self.backend.get_modified_time(name)


class _CheckedReader(io.RawIOBase):
    """Plaintext reads; an authentication failure mid-stream raises, never returns bytes."""

    def __init__(self, stream, name):
        self.stream = stream
        self.name = name

    def readable(self):
        return True

    def readinto(self, buffer):
        try:
            data = self.stream.read(len(buffer))
        except tink.TinkError:
            raise EncryptedFileError(f"{self.name} does not decrypt for its organization (altered or wrong key)") from None
        buffer[: len(data)] = data
        return len(data)

    def close(self):
        try:
            self.stream.close()
        finally:
            super().close()
