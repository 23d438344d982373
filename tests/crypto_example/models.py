from django.db import models

from accounts.tenancy import OrganizationOwned
from jagcall.kernel.crypto.blind_index import BlindIndexField
from jagcall.kernel.crypto.fields import EncryptedBinaryField, EncryptedJSONField, EncryptedTextField
from jagcall.kernel.crypto.storage import EncryptedFileField


def normalize_phone(value: str) -> str:
    digits = "".join(ch for ch in value if ch.isdigit())
    return f"+{digits}"


class SecretNote(OrganizationOwned):
    title = models.CharField(max_length=100)  # not sensitive: stays queryable
    body = EncryptedTextField()
    details = EncryptedJSONField(null=True, blank=True)
    blob = EncryptedBinaryField(null=True, blank=True)
    phone = EncryptedTextField(null=True, blank=True)
    phone_index = BlindIndexField(source="phone", normalize=normalize_phone)
    attachment = EncryptedFileField(blank=True)


class PlainNote(OrganizationOwned):
    """The same shape unencrypted: the baseline of bench/crypto.py."""

    title = models.CharField(max_length=100)
    body = models.TextField()
    details = models.JSONField(null=True, blank=True)
