"""Every error the encryption kernel raises, in one module that imports no other part of it.

Each kernel module imports its errors from here, so an error class never
pulls in the module that raises it (and with it an import cycle).
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured


class KeyConfigurationError(ImproperlyConfigured):
    """The master keyset is missing, malformed, not AES-256, or not the one the data was wrapped with."""


class DecryptionError(Exception):
    """A stored value could not be decrypted (wrong row, owner, field, organization or key): fail closed."""


class KeysetMissing(DecryptionError):
    """No keys exist for this organization or platform keyset, so nothing stored can have been encrypted with them.

    Reads never create keys; writes create them through
    ``services.organization_keys_for_write`` / ``services.platform_keys_for_write``.
    """


class KeysetDestroyed(Exception):
    """The organization's keys were destroyed (crypto-shredded): its ciphertexts are gone for good."""


class EncryptedFileError(Exception):
    """An encrypted file cannot be written or read as asked (wrong organization, name, format or key)."""


class KeyRetirementRefused(Exception):
    """A key cannot be retired yet: ciphertexts still use it, or a key cache may still hold it as primary."""
