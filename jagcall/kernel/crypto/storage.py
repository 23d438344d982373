"""Encrypted file storage on top of any Django storage (local disk, S3-compatible).

Each file is written as
    b"jcf1" + 4-byte id of the streaming key + Tink streaming AEAD ciphertext
(AES256_GCM_HKDF, 1 MB segments) under the owning organization's streaming
keyset, with associated data binding it to the organization and the file's
name. Writing and reading are streamed segment by segment, so memory stays
flat whatever the file size.

[!!] The organization comes from the caller, never from the file's name or
path: ``EncryptedFileField`` passes its row's ``organization_id``, other
callers use ``save_for`` / ``open_for``. The plain Storage ``save`` and
``open``, which carry only a name, are refused. Names must also lie in the
caller's folder, ``orgs/<organization uuid>/`` (``encrypted_upload_to``
builds such names): a name naming another organization is refused before
any key is touched. Encrypted files have no public URL: views that serve
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
from django.core.files.utils import validate_file_name
from django.db import models
from django.db.models.fields.files import FieldFile
from django.utils.deconstruct import deconstructible
from django.utils.module_loading import import_string

from jagcall.kernel.crypto.errors import EncryptedFileError
from jagcall.kernel.crypto.keys import organization_keys
from jagcall.kernel.crypto.services import organization_keys_for_write

MAGIC = b"jcf1"
HEADER_SIZE = len(MAGIC) + 4
CHUNK = 1024 * 1024


def _organization_uuid(organization_id) -> uuid.UUID:
    try:
        return organization_id if isinstance(organization_id, uuid.UUID) else uuid.UUID(str(organization_id))
    except (TypeError, ValueError):
        raise EncryptedFileError(f"an encrypted file needs the id of the organization that owns it, not {organization_id!r}") from None


def _check_name(organization_id, name: str) -> uuid.UUID:
    """[!!] The caller's organization decides the keys; the name must only agree with it."""
    organization = _organization_uuid(organization_id)
    folder = f"orgs/{organization}/"
    if not str(name).replace("\\", "/").startswith(folder) or ".." in str(name).split("/"):
        raise EncryptedFileError(
            f"{name!r} is not in the folder of organization {organization} ({folder}); "
            "build names with encrypted_upload_to"
        )
    return organization


def file_associated_data(organization_id, name: str) -> bytes:
    return f"jagcall:file:v1|{_check_name(organization_id, name)}|{name}".encode()


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


_NO_ORGANIZATION = (
    "encrypted files are written and read for the organization of the row that owns them: "
    "use an EncryptedFileField, or storage.save_for(organization_id=..., ...) / storage.open_for(organization_id=..., ...)"
)


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
    def save_for(self, *, organization_id, name, content, max_length=None) -> str:
        """Encrypt ``content`` for ``organization_id`` under ``name`` (in that organization's folder)."""
        if name is None:
            name = content.name
        if not hasattr(content, "chunks"):
            content = File(content, name)
        organization = _check_name(organization_id, name)
        validate_file_name(name, allow_relative_path=True)
        name = self.get_available_name(name, max_length=max_length)
        return self._write(organization, name, content)

    def _save(self, name, content):
        raise EncryptedFileError(_NO_ORGANIZATION)

    def _write(self, organization_id, name, content) -> str:
        keys = organization_keys_for_write(organization_id)
        with tempfile.TemporaryFile(dir=getattr(settings, "FILE_UPLOAD_TEMP_DIR", None)) as sealed:
            sealed.write(MAGIC + keys.streaming_primary_id.to_bytes(4, "big"))
            with keys.streaming.new_encrypting_stream(_NonClosing(sealed), file_associated_data(organization_id, name)) as stream:
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
    def open_for(self, *, organization_id, name, mode="rb") -> File:
        """The plaintext of ``name``, decrypted with ``organization_id``'s keys (streamed)."""
        if "w" in mode or "a" in mode or "+" in mode:
            raise EncryptedFileError("encrypted files are written with save(), not opened for writing")
        organization = _check_name(organization_id, name)
        raw = self.backend.open(name, "rb")
        header = raw.read(HEADER_SIZE)
        if len(header) != HEADER_SIZE or not header.startswith(MAGIC):
            raw.close()
            raise EncryptedFileError(f"{name} is not an encrypted file")
        try:
            keys = organization_keys(organization)
            stream = keys.streaming.new_decrypting_stream(raw, file_associated_data(organization, name))
        except tink.TinkError:
            raw.close()
            raise EncryptedFileError(f"{name} does not decrypt for organization {organization}") from None
        except Exception:
            raw.close()
            raise
        return File(_CheckedReader(stream, name), name=name)

    def _open(self, name, mode="rb"):
        if "w" in mode or "a" in mode or "+" in mode:
            raise EncryptedFileError("encrypted files are written with save(), not opened for writing")
        raise EncryptedFileError(_NO_ORGANIZATION)

    def key_id(self, name) -> int:
        """The streaming key a stored file was encrypted under (read from its header; no key needed)."""
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


class EncryptedFieldFile(FieldFile):
    """A FieldFile that reads and writes with its row's organization, never one taken from the name."""

    def _get_file(self):
        self._require_file()
        if getattr(self, "_file", None) is None:
            self._file = self.storage.open_for(organization_id=self.instance.organization_id, name=self.name)
        return self._file

    file = property(_get_file, FieldFile._set_file, FieldFile._del_file)

    def open(self, mode="rb"):
        self._require_file()
        if getattr(self, "_file", None) is None:
            self.file = self.storage.open_for(organization_id=self.instance.organization_id, name=self.name, mode=mode)
        else:
            self.file.open(mode)
        return self

    open.alters_data = True

    def save(self, name, content, save=True):
        name = self.field.generate_filename(self.instance, name)
        self.name = self.storage.save_for(
            organization_id=self.instance.organization_id, name=name, content=content, max_length=self.field.max_length
        )
        self._set_instance_attribute(self.name, content)
        self._committed = True
        if save:
            self.instance.save()

    save.alters_data = True


class EncryptedFileField(models.FileField):
    """A file encrypted with its row's organization keys (the row needs ``organization``)."""

    attr_class = EncryptedFieldFile

    def __init__(self, *args, storage=None, upload_to=encrypted_upload_to, max_length=255, **kwargs):
        super().__init__(*args, storage=storage or EncryptedFileStorage(), upload_to=upload_to, max_length=max_length, **kwargs)
        if not isinstance(self.storage, EncryptedFileStorage):
            raise TypeError("EncryptedFileField stores through an EncryptedFileStorage")

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs.pop("storage", None)
        if kwargs.get("upload_to") is encrypted_upload_to:
            kwargs.pop("upload_to")
        if kwargs.get("max_length") == 255:
            kwargs.pop("max_length")
        else:
            kwargs.setdefault("max_length", 100)  # FileField drops its own default of 100
        return name, path, args, kwargs
