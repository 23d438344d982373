"""Encrypted files: no plaintext on disk, bound to organization and name, streamed."""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest
from django.conf import settings
from django.core.files.base import ContentFile

from jagcall.kernel.crypto import keys
from jagcall.kernel.crypto.errors import EncryptedFileError
from jagcall.kernel.crypto.storage import MAGIC
from tests.crypto_example.models import SecretNote

pytestmark = pytest.mark.django_db
# Rows are read back through _base_manager: these tests look at rows as stored (some moved to
# another organization by raw SQL), as the kernel itself does, not through the tenancy scope.

RECORDING = (b"RIFF....WAVEfmt caller says: my card ends 4242, call me back at 415 555 0199. " * 40000)  # ~3 MB


def disk_path(name):
    return os.path.join(settings.JAGCALL_ENCRYPTED_FILES_STORAGE["OPTIONS"]["location"], name)


def make(organization, content=RECORDING, filename="call.wav"):
    note = SecretNote(organization=organization, title="call", body="x")
    note.attachment.save(filename, ContentFile(content), save=False)
    note.save()
    return note


def test_raw_bytes_hold_no_plaintext_and_read_back_exactly(organization):
    note = make(organization)
    name = note.attachment.name
    assert name.startswith(f"orgs/{organization.id}/secretnote/") and name.endswith(".wav")
    raw = open(disk_path(name), "rb").read()
    assert raw.startswith(MAGIC)
    for fragment in (b"RIFF", b"card ends 4242", b"415 555 0199"):
        assert fragment not in raw
    with SecretNote._base_manager.get(pk=note.pk).attachment.open() as handle:
        assert hashlib.sha256(handle.read()).digest() == hashlib.sha256(RECORDING).digest()


def test_read_is_streamed_in_segments(organization):
    note = make(organization)
    with note.attachment.storage.open_for(organization_id=organization.id, name=note.attachment.name) as handle:
        first = handle.read(4096)
        rest = b"".join(iter(lambda: handle.read(256 * 1024), b""))
    assert first + rest == RECORDING


def test_a_file_moved_to_another_name_or_organization_does_not_decrypt(organization, other_organization):
    note = make(organization)
    make(other_organization)  # the other organization has keys of its own
    storage = note.attachment.storage
    moved = note.attachment.name.replace(str(organization.id), str(other_organization.id))
    os.makedirs(os.path.dirname(disk_path(moved)), exist_ok=True)
    shutil.copy(disk_path(note.attachment.name), disk_path(moved))
    with pytest.raises(EncryptedFileError):
        storage.open_for(organization_id=other_organization.id, name=moved).read()
    renamed = note.attachment.name.replace(".wav", "-copy.wav")
    shutil.copy(disk_path(note.attachment.name), disk_path(renamed))
    with pytest.raises(EncryptedFileError):
        storage.open_for(organization_id=organization.id, name=renamed).read()


def test_the_organization_comes_from_the_caller_never_from_the_path(organization, other_organization):
    theirs = make(other_organization, content=b"the other clinic's recording " * 1000)
    mine = make(organization)
    storage = mine.attachment.storage
    their_path = theirs.attachment.name
    assert their_path.startswith(f"orgs/{other_organization.id}/")
    keys.evict()

    # A row of this organization pointed at the other organization's file (e.g. a tampered name):
    # nothing is read with the other organization's keys.
    SecretNote._base_manager.filter(pk=mine.pk).update(attachment=their_path)
    with pytest.raises(EncryptedFileError, match=f"not in the folder of organization {organization.id}"):
        SecretNote._base_manager.get(pk=mine.pk).attachment.open().read()
    with pytest.raises(EncryptedFileError, match="not in the folder"):
        storage.open_for(organization_id=organization.id, name=their_path)
    # Writing under a path that names the other organization is refused before any key is touched.
    planted = f"orgs/{other_organization.id}/secretnote/planted.wav"
    with pytest.raises(EncryptedFileError, match="not in the folder"):
        storage.save_for(organization_id=organization.id, name=planted, content=ContentFile(b"mine"))
    assert not os.path.exists(disk_path(planted))
    assert other_organization.id not in keys._cache
    # A name alone (Django's plain Storage API) says no organization: refused, not guessed from the path.
    with pytest.raises(EncryptedFileError, match="organization of the row"):
        storage.open(their_path)
    with pytest.raises(EncryptedFileError, match="organization of the row"):
        storage.save(planted, ContentFile(b"mine"))
    assert other_organization.id not in keys._cache
    # The other organization still reads its own file through its own row.
    assert SecretNote._base_manager.get(pk=theirs.pk).attachment.open().read() == b"the other clinic's recording " * 1000


def test_tampered_file_fails_instead_of_returning_bytes(organization):
    note = make(organization)
    path = disk_path(note.attachment.name)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x40
    open(path, "wb").write(bytes(data))
    with pytest.raises(EncryptedFileError):
        with SecretNote._base_manager.get(pk=note.pk).attachment.open() as handle:
            while handle.read(1024 * 1024):
                pass


def test_names_outside_an_organization_folder_and_public_urls_are_refused(organization):
    note = make(organization)
    storage = note.attachment.storage
    with pytest.raises(EncryptedFileError):
        storage.save_for(organization_id=organization.id, name="loose/file.txt", content=ContentFile(b"data"))
    with pytest.raises(EncryptedFileError):
        storage.save_for(organization_id=organization.id, name=f"orgs/{organization.id}/../x.txt", content=ContentFile(b"data"))
    with pytest.raises(NotImplementedError):
        storage.url(note.attachment.name)
    with pytest.raises(EncryptedFileError):
        storage.open_for(organization_id=organization.id, name=note.attachment.name, mode="wb")
