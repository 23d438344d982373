"""A missing, malformed or weak master keyset stops start-up with a message saying what to set."""

from __future__ import annotations

import pytest
import tink
from tink import aead

from jagcall.kernel.crypto import keys
from jagcall.tests.test_settings import PRODUCTION_ENV, run_django


def test_production_starts_with_a_valid_master_keyset():
    result = run_django("from jagcall.kernel.crypto.keys import master; print(master.source)", PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "JAGCALL_MASTER_KEYSET"


def test_missing_master_keyset_stops_start_up():
    result = run_django("print('started')", PRODUCTION_ENV, drop=["JAGCALL_MASTER_KEYSET"])
    assert result.returncode != 0 and "started" not in result.stdout
    assert "A master keyset is required when DEBUG is off" in result.stderr


def test_malformed_master_keyset_stops_start_up():
    result = run_django("print('started')", {**PRODUCTION_ENV, "JAGCALL_MASTER_KEYSET": '{"key": "not a keyset"}'})
    assert result.returncode != 0 and "started" not in result.stdout
    assert "JAGCALL_MASTER_KEYSET is not a valid Tink keyset" in result.stderr


def test_aes_128_master_keyset_is_refused():
    weak = keys.serialize_master_keyset(tink.new_keyset_handle(aead.aead_key_templates.AES128_GCM))
    result = run_django("print('started')", {**PRODUCTION_ENV, "JAGCALL_MASTER_KEYSET": weak})
    assert result.returncode != 0 and "started" not in result.stdout
    assert "256-bit keys" in result.stderr


def test_two_master_sources_are_refused():
    result = run_django("print('started')", {**PRODUCTION_ENV, "JAGCALL_MASTER_KEY_URI": "gcp-kms://projects/p/locations/l/keyRings/r/cryptoKeys/k"})
    assert result.returncode != 0 and "Set only one of" in result.stderr


class LocalKmsClient(tink.KmsClient):
    """A KMS of our own for the test: Tink asks it for the AEAD behind a key URI."""

    def __init__(self):
        self.primitive = tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM).primitive(aead.Aead)
        self.calls = 0

    def does_support(self, key_uri: str) -> bool:
        return key_uri.startswith("local-kms://")

    def get_aead(self, key_uri: str):
        self.calls += 1
        return self.primitive


@pytest.mark.django_db
def test_kms_key_uri_wraps_organization_keys(organization, swap_master):
    from django.db import connection

    from jagcall.kernel.crypto import services
    from tests.crypto_example.models import SecretNote

    client = LocalKmsClient()
    tink.register_kms_client(client)
    try:
        swap_master(uri="local-kms://jagcall-test/master")
        assert client.calls == 1 and keys.master.primary_key_id is None
        services.organization_keys_create(organization_id=organization.id)
        note = SecretNote.objects.create(organization=organization, title="t", body="wrapped by the KMS")
        keys.evict()
        assert SecretNote._base_manager.get(pk=note.pk).body == "wrapped by the KMS"
        with connection.cursor() as cursor:
            cursor.execute("SELECT aead_keyset FROM crypto_organizationkeyset WHERE organization_id = %s", [organization.id])
            blob = bytes(cursor.fetchone()[0])
        with pytest.raises(tink.TinkError):  # only the KMS can open it
            tink.proto_keyset_format.parse_encrypted(
                blob, tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM).primitive(aead.Aead), b""
            )
    finally:
        from tink import _kms_clients

        _kms_clients._kms_clients.remove(client)
