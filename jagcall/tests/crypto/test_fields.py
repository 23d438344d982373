"""C1/C16: encrypted fields hold no plaintext, bind each value to its row, fail closed."""

from __future__ import annotations

import pytest
from django.core.exceptions import FieldError
from django.db import connection, transaction

from accounts.tests.factories import OrganizationFactory
from jagcall.kernel.crypto import keys
from jagcall.kernel.crypto.errors import DecryptionError, KeysetDestroyed, KeysetMissing
from jagcall.kernel.crypto.fields import FORMAT, ciphertext_key_id
from jagcall.kernel.crypto.models import OrganizationKeyset
from tests.crypto_example.models import SecretNote, normalize_phone

pytestmark = pytest.mark.django_db
# Rows are read back through _base_manager: these tests look at rows as stored (some moved to
# another organization by raw SQL), as the kernel itself does, not through the tenancy scope.

SECRET = "Patient Jane Roe, root canal on 3 Dec, allergic to penicillin"
DETAILS = {"diagnosis": "periodontitis stage II", "insurer": "Blue Shield PPO"}
BLOB = b"\x00raw-binary-secret-\xff" * 3
PHONE = "+1 (415) 555-0199"


def make_note(organization, **extra):
    return SecretNote.objects.create(
        organization=organization, title="visit", body=SECRET, details=DETAILS, blob=BLOB, phone=PHONE, **extra
    )


def raw_row(pk) -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM crypto_example_secretnote WHERE id = %s", [pk])
        columns = [c.name for c in cursor.description]
        return dict(zip(columns, cursor.fetchone()))


def raw_set(pk, column, value):
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE crypto_example_secretnote SET {column} = %s WHERE id = %s", [value, pk])


def test_raw_sql_finds_no_plaintext_and_values_read_back(organization):
    note = make_note(organization)
    row = raw_row(note.pk)
    everything = b"".join(bytes(v) if isinstance(v, memoryview) else str(v).encode() for v in row.values())
    for plaintext in (SECRET.encode(), b"penicillin", b"periodontitis", b"Blue Shield", BLOB, b"555-0199", b"4155550199"):
        assert plaintext not in everything
    for column in ("body", "details", "blob", "phone"):
        assert bytes(row[column]).startswith(FORMAT)
    fresh = SecretNote._base_manager.get(pk=note.pk)
    assert (fresh.body, fresh.details, fresh.blob, fresh.phone) == (SECRET, DETAILS, BLOB, PHONE)


def test_the_cipher_is_aes_256_gcm_with_random_nonces(organization):
    first, second = make_note(organization), make_note(organization)
    assert bytes(raw_row(first.pk)["body"]) != bytes(raw_row(second.pk)["body"])  # fresh 96-bit nonce each time
    row = OrganizationKeyset.objects.get(organization_id=organization.id)
    handle = keys.unwrap(row.aead_keyset, organization.id, "aead")
    keyset = keys.keyset_proto(handle)
    from tink.proto import aes_gcm_pb2

    assert [k.key_data.type_url for k in keyset.key] == [keys.AES_GCM_KEY]
    assert len(aes_gcm_pb2.AesGcmKey.FromString(keyset.key[0].key_data.value).key_value) == 32
    stored = bytes(raw_row(first.pk)["body"])
    # jc1 | Tink 0x01 + key id | 12-byte nonce | ciphertext | 16-byte tag
    assert len(stored) == len(FORMAT) + 5 + 12 + len(SECRET.encode()) + 16
    assert ciphertext_key_id(stored) == keyset.primary_key_id


def test_ciphertext_copied_to_another_row_field_or_organization_does_not_decrypt(organization, other_organization):
    source = make_note(organization)
    same_org = make_note(organization)
    other_org = make_note(other_organization)
    stolen = bytes(raw_row(source.pk)["body"])
    raw_set(same_org.pk, "body", stolen)
    raw_set(same_org.pk, "phone", stolen)
    raw_set(other_org.pk, "body", stolen)
    with pytest.raises(DecryptionError):
        SecretNote._base_manager.get(pk=same_org.pk).body
    with pytest.raises(DecryptionError):
        SecretNote._base_manager.get(pk=same_org.pk).phone
    with pytest.raises(DecryptionError):
        SecretNote._base_manager.get(pk=other_org.pk).body
    # Moving the whole row to another organization breaks every value too.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE crypto_example_secretnote SET organization_id = %s WHERE id = %s", [other_organization.id, source.pk])
    with pytest.raises(DecryptionError):
        SecretNote._base_manager.get(pk=source.pk).details


def test_tampering_and_plaintext_in_the_column_fail_closed(organization):
    note = make_note(organization)
    stored = bytearray(raw_row(note.pk)["body"])
    stored[-1] ^= 0x01
    raw_set(note.pk, "body", bytes(stored))
    with pytest.raises(DecryptionError):
        SecretNote._base_manager.get(pk=note.pk).body
    raw_set(note.pk, "details", b'{"diagnosis": "written around the app"}')
    with pytest.raises(DecryptionError, match="not in the encrypted format"):
        SecretNote._base_manager.get(pk=note.pk).details


def test_plaintext_cannot_reach_the_column_around_save(organization):
    note = make_note(organization)
    with pytest.raises(TypeError, match="encrypted"), transaction.atomic():
        SecretNote._base_manager.filter(pk=note.pk).update(body="sneaky plaintext")
    with pytest.raises(FieldError), transaction.atomic():
        SecretNote._base_manager.filter(body=SECRET).exists()
    assert SecretNote._base_manager.filter(body__isnull=False).count() == 1
    assert bytes(raw_row(note.pk)["body"]).startswith(FORMAT)


def test_deferred_and_updated_values(organization):
    note = make_note(organization)
    deferred = SecretNote.objects.for_org(organization).defer("body").get(pk=note.pk)
    assert deferred.body == SECRET
    deferred.body = "changed"
    deferred.save(update_fields=["body"])
    assert SecretNote._base_manager.get(pk=note.pk).body == "changed"
    assert b"changed" not in bytes(raw_row(note.pk)["body"])


def test_blind_index_finds_a_phone_number_without_decrypting(organization, other_organization):
    mine = make_note(organization)
    theirs = make_note(other_organization)
    index_field = SecretNote._meta.get_field("phone_index")
    candidates = index_field.candidates(" 1-415-555-0199 ", organization_id=organization.id)
    found = SecretNote.objects.for_org(organization).filter(phone_index__in=candidates)
    assert list(found) == [mine]
    row = raw_row(mine.pk)
    assert "5550199" not in row["phone_index"] and row["phone_index"].startswith("v1$")
    assert row["phone_index"] != raw_row(theirs.pk)["phone_index"]  # per-organization index
    assert normalize_phone(PHONE) == "+14155550199"


def test_blind_index_key_rotation_keeps_lookups_working(organization, settings):
    note = make_note(organization)
    old_keys = settings.JAGCALL_BLIND_INDEX_KEYS
    settings.JAGCALL_BLIND_INDEX_KEYS = "v2:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVpBQkNERUY=" + "," + old_keys
    index_field = SecretNote._meta.get_field("phone_index")
    candidates = index_field.candidates(PHONE, organization_id=organization.id)
    assert SecretNote._base_manager.filter(phone_index__in=candidates).get() == note  # found under v1
    from django.core.management import call_command

    call_command("reencrypt", "--restart", stdout=open("/dev/null", "w"))
    assert raw_row(note.pk)["phone_index"].startswith("v2$")
    assert SecretNote._base_manager.filter(phone_index__in=candidates).get() == note


def test_organization_keys_are_created_with_the_organization_and_never_stored_in_clear(owner):
    from accounts import services

    organization = services.organization_create(name="Keys Test Clinic", owner=owner)
    row = OrganizationKeyset.objects.get(organization_id=organization.id)
    for kind, blob in (("aead", row.aead_keyset), ("streaming", row.streaming_keyset)):
        handle = keys.unwrap(blob, organization.id, kind)
        for key in keys.keyset_proto(handle).key:
            assert key.key_data.value not in bytes(blob)
    # A wrapped keyset is bound to its organization and kind.
    other = OrganizationFactory()
    with pytest.raises(keys.KeyConfigurationError):
        keys.unwrap(row.aead_keyset, other.id, "aead")
    with pytest.raises(keys.KeyConfigurationError):
        keys.unwrap(row.aead_keyset, organization.id, "streaming")


def test_reading_never_creates_keys_and_fails_closed_without_them(organization, other_organization):
    note = make_note(organization)
    stolen = bytes(raw_row(note.pk)["body"])
    assert not OrganizationKeyset.objects.filter(organization_id=other_organization.id).exists()
    with connection.cursor() as cursor:  # a ciphertext planted in a row of an organization that has no keys
        cursor.execute("UPDATE crypto_example_secretnote SET organization_id = %s WHERE id = %s", [other_organization.id, note.pk])
    with pytest.raises(KeysetMissing, match="has no encryption keys"):
        SecretNote._base_manager.get(pk=note.pk).body
    with pytest.raises(KeysetMissing):
        keys.organization_keys(other_organization.id)
    assert not OrganizationKeyset.objects.filter(organization_id=other_organization.id).exists()
    assert bytes(raw_row(note.pk)["body"]) == stolen
    # The first write creates them (a service at write time).
    SecretNote.objects.create(organization=other_organization, title="first", body="first secret")
    assert OrganizationKeyset.objects.filter(organization_id=other_organization.id).exists()


def test_deleting_an_organization_destroys_its_keys():
    """The kernel holds no foreign key to organizations: accounts registers them, and deletion shreds."""
    from accounts.models import Organization

    organization = OrganizationFactory(name="Short Lived Clinic")
    organization_id = organization.id
    make_note(organization).delete()  # its first write gave it keys; the purge removes its rows first
    assert keys.organization_keys(organization_id).aead_key_ids
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM information_schema.table_constraints "
            "WHERE table_name = 'crypto_organizationkeyset' AND constraint_type = 'FOREIGN KEY'"
        )
        assert cursor.fetchone()[0] == 0
    Organization.objects.filter(pk=organization_id).delete()
    row = OrganizationKeyset.objects.get(organization_id=organization_id)
    assert row.destroyed_at is not None and row.aead_keyset is None and row.streaming_keyset is None
    with pytest.raises(KeysetDestroyed):
        keys.organization_keys(organization_id)
