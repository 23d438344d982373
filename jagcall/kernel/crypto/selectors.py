"""Reads over encrypted data: which models hold it, and which keys it still uses."""

from __future__ import annotations

from collections import defaultdict

from django.apps import apps
from django.db import connection, models

from jagcall.kernel.crypto.blind_index import BlindIndexField
from jagcall.kernel.crypto.fields import FORMAT, encrypted_fields
from jagcall.kernel.crypto.storage import EncryptedFileStorage


def models_with_encrypted_fields() -> list[type[models.Model]]:
    return [m for m in apps.get_models() if encrypted_fields(m)]


def blind_index_fields(model) -> list[BlindIndexField]:
    return [f for f in model._meta.concrete_fields if isinstance(f, BlindIndexField)]


def encrypted_file_fields(model) -> list[models.FileField]:
    return [
        f for f in model._meta.concrete_fields
        if isinstance(f, models.FileField) and isinstance(f.storage, EncryptedFileStorage)
    ]


def models_with_encrypted_files() -> list[type[models.Model]]:
    return [m for m in apps.get_models() if encrypted_file_fields(m)]


def field_key_usage() -> dict[str, set[int]]:
    """organization id -> AEAD key ids that some stored field value was encrypted under."""
    usage: dict[str, set[int]] = defaultdict(set)
    start = len(FORMAT) + 2  # 1-based SQL offset of the 4-byte key id after Tink's version byte
    with connection.cursor() as cursor:
        for model in models_with_encrypted_fields():
            table = connection.ops.quote_name(model._meta.db_table)
            for field in encrypted_fields(model):
                column = connection.ops.quote_name(field.column)
                cursor.execute(
                    f"SELECT DISTINCT organization_id::text, substring({column} from {start} for 4) "
                    f"FROM {table} WHERE {column} IS NOT NULL"
                )
                for organization_id, key_id in cursor.fetchall():
                    usage[organization_id].add(int.from_bytes(bytes(key_id), "big"))
    return usage


def file_key_usage() -> dict[str, set[int]]:
    """organization id -> streaming key ids that some stored file was encrypted under."""
    usage: dict[str, set[int]] = defaultdict(set)
    for model in models_with_encrypted_files():
        for field in encrypted_file_fields(model):
            rows = model._default_manager.exclude(**{field.attname: ""}).exclude(**{f"{field.attname}__isnull": True})
            for organization_id, name in rows.values_list("organization_id", field.attname).iterator():
                usage[str(organization_id)].add(field.storage.key_id(name))
    return usage


def master_key_usage() -> set[int]:
    from jagcall.kernel.crypto.models import OrganizationKeyset, PlatformKeyset

    used = set(
        OrganizationKeyset.objects.filter(destroyed_at__isnull=True, master_key_id__isnull=False)
        .values_list("master_key_id", flat=True)
        .distinct()
    )
    return used | set(PlatformKeyset.objects.filter(master_key_id__isnull=False).values_list("master_key_id", flat=True))


def sealed_key_usage() -> set[int]:
    """Platform-keyset key ids that sealed secrets registered by the apps still use."""
    from jagcall.kernel.crypto.sealed import SOURCES

    used: set[int] = set()
    for iterate, _reseal, key_ids in SOURCES.values():
        for obj in iterate():
            used |= set(key_ids(obj))
    return used
