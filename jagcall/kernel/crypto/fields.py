"""Encrypted model fields: text, JSON and binary.

Stored value (bytea): b"jc1" + Tink AES256_GCM ciphertext (its 5-byte prefix
names the key; then a 96-bit random nonce, the ciphertext and the 128-bit
tag), under the row's organization keyset. The associated data binds each
ciphertext to organization, model, field and row id, so a ciphertext
copied to another row, field or organization does not decrypt.

Values decrypt lazily, on first attribute access, and fail closed: a value
that does not decrypt raises DecryptionError, never returns raw bytes.

[!!] Encrypted fields are written only through ``Model.save()`` (and
``bulk_create``). Filtering by value, ``QuerySet.update()`` and
``bulk_update()`` with plaintext are refused, so nothing reaches the
database unencrypted. For exact lookups add a BlindIndexField.
"""

from __future__ import annotations

import json

import tink
from django.core import checks, exceptions
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from jagcall.kernel.crypto.errors import DecryptionError  # noqa: F401  (also caught from this module)
from jagcall.kernel.crypto.keys import organization_keys
from jagcall.kernel.crypto.services import organization_keys_for_write

FORMAT = b"jc1"
_FORMAT_LEN = len(FORMAT)
KEY_ID_SLICE = slice(len(FORMAT) + 1, len(FORMAT) + 5)  # after Tink's 0x01 version byte


class Ciphertext(bytes):
    """A value as read from the database, not decrypted yet."""


class _Sealed(bytes):
    """A value encrypted by pre_save, on its way to the database."""


def ciphertext_key_id(value: bytes) -> int | None:
    if not value or not bytes(value).startswith(FORMAT):
        return None
    return int.from_bytes(bytes(value)[KEY_ID_SLICE], "big")


_ad_prefixes: dict = {}


def associated_data(instance, field_name: str) -> bytes:
    """``jagcall:field:v1|<organization>|<app.model>|<field>|<row id>``.

    The constant part is built once per (organization, model, field) and the
    row id once per instance: a listing decrypts many values of few rows.
    """
    key = (instance.organization_id, instance.__class__, field_name)
    prefix = _ad_prefixes.get(key)
    if prefix is None:
        meta = instance._meta
        prefix = f"jagcall:field:v1|{instance.organization_id}|{meta.app_label}.{meta.model_name}|{field_name}|".encode()
        if len(_ad_prefixes) > 50_000:
            _ad_prefixes.clear()
        _ad_prefixes[key] = prefix
    pk = instance.pk
    cached = instance.__dict__.get("_jc_pk_bytes")
    if cached is None or cached[0] is not pk:
        cached = (pk, str(pk).encode())
        instance.__dict__["_jc_pk_bytes"] = cached
    return prefix + cached[1]


class _Descriptor:
    def __init__(self, field):
        self.field = field

    def __get__(self, instance, owner):
        if instance is None:
            return self
        if self.field.attname not in instance.__dict__:  # deferred: load it now, like Django does
            instance.refresh_from_db(fields=[self.field.attname])
        value = instance.__dict__.get(self.field.attname)
        if isinstance(value, Ciphertext):
            value = self.field.decrypt(instance, value)
            instance.__dict__[self.field.attname] = value
        return value

    def __set__(self, instance, value):
        instance.__dict__[self.field.attname] = value


class EncryptedFieldMixin:
    encrypted = True
    empty_strings_allowed = False

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("editable", True)
        super().__init__(*args, **kwargs)

    # --- storage ------------------------------------------------------------
    def get_internal_type(self):
        return "BinaryField"

    def db_type(self, connection):
        return "bytea"

    def contribute_to_class(self, cls, name, private_only=False):
        super().contribute_to_class(cls, name, private_only=private_only)
        setattr(cls, self.attname, _Descriptor(self))

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        return Ciphertext(bytes(value))

    def to_python(self, value):
        return value

    def pre_save(self, model_instance, add):
        plaintext = getattr(model_instance, self.attname)  # decrypts a loaded value first
        if plaintext is None:
            return None
        if model_instance.pk is None:
            raise ValueError(f"{model_instance._meta.label}.{self.name}: encrypted fields need the primary key before saving")
        keys = organization_keys_for_write(model_instance.organization_id)  # a write may create the keys; a read never does
        ciphertext = keys.aead.encrypt(self.encode_value(plaintext), associated_data(model_instance, self.name))
        return _Sealed(FORMAT + ciphertext)

    def get_db_prep_value(self, value, connection, prepared=False):
        if value is None:
            return None
        if isinstance(value, _Sealed):
            return bytes(value)
        raise TypeError(
            f"{self.model._meta.label}.{self.name} is encrypted: write it with save(), "
            "and do not filter, update() or bulk_update() it by value."
        )

    def get_lookup(self, lookup_name):
        if lookup_name != "isnull":
            return None  # "Unsupported lookup": encrypted values are not queryable
        return super().get_lookup(lookup_name)

    def decrypt(self, instance, value: bytes):
        if not value.startswith(FORMAT):
            raise DecryptionError(f"{instance._meta.label}.{self.name} of {instance.pk} is not in the encrypted format")
        keys = organization_keys(instance.organization_id)
        try:
            plaintext = keys.aead.decrypt(value[_FORMAT_LEN:], associated_data(instance, self.name))
        except tink.TinkError:
            raise DecryptionError(
                f"{instance._meta.label}.{self.name} of {instance.pk} does not decrypt for this row and organization"
            ) from None
        return self.decode_value(plaintext)

    def value_from_object(self, obj):
        return getattr(obj, self.attname)

    def value_to_string(self, obj):
        return "[encrypted]"

    def check(self, **kwargs):
        errors = super().check(**kwargs)
        model = getattr(self, "model", None)
        if model is not None and not model._meta.abstract:
            names = {f.name for f in model._meta.get_fields()}
            if "organization" not in names:
                errors.append(checks.Error(f"{self.name}: encrypted fields need an 'organization' field", obj=self, id="crypto.E002"))
        if self.unique or self.db_index:
            errors.append(checks.Error(f"{self.name}: encrypted fields cannot be unique or indexed; add a BlindIndexField", obj=self, id="crypto.E003"))
        return errors

    # --- subclasses -----------------------------------------------------------
    def encode_value(self, value) -> bytes:
        raise NotImplementedError

    def decode_value(self, data: bytes):
        raise NotImplementedError


class EncryptedTextField(EncryptedFieldMixin, models.Field):
    description = "Text encrypted with the organization's key"

    def encode_value(self, value) -> bytes:
        if not isinstance(value, str):
            raise exceptions.ValidationError(f"{self.name} must be text")
        return value.encode("utf-8")

    def decode_value(self, data: bytes) -> str:
        return data.decode("utf-8")

    def formfield(self, **kwargs):
        from django import forms

        return forms.CharField(widget=forms.Textarea, required=not self.blank, **kwargs)


class EncryptedJSONField(EncryptedFieldMixin, models.Field):
    description = "JSON encrypted with the organization's key"

    def encode_value(self, value) -> bytes:
        return json.dumps(value, cls=DjangoJSONEncoder, separators=(",", ":"), sort_keys=True).encode("utf-8")

    def decode_value(self, data: bytes):
        return json.loads(data.decode("utf-8"))


class EncryptedBinaryField(EncryptedFieldMixin, models.Field):
    description = "Bytes encrypted with the organization's key"

    def encode_value(self, value) -> bytes:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise exceptions.ValidationError(f"{self.name} must be bytes")
        return bytes(value)

    def decode_value(self, data: bytes) -> bytes:
        return data


def encrypted_fields(model) -> list[models.Field]:
    return [f for f in model._meta.concrete_fields if getattr(f, "encrypted", False)]
