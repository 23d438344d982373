"""Blind indexes: exact lookup of an encrypted value without decrypting anything.

index = "<version>$" + hex(HMAC-SHA256(key[version], purpose | organization | normalized value))

The HMAC keys come from JAGCALL_BLIND_INDEX_KEYS, never from the database,
so a stolen database cannot test guesses. Keys are versioned: new indexes
use the first key, lookups try every key, and ``manage.py reencrypt``
rewrites indexes under the newest one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


def _keys() -> tuple[tuple[str, bytes], ...]:
    return _parsed_keys(settings.JAGCALL_BLIND_INDEX_KEYS)


@lru_cache(maxsize=4)
def _parsed_keys(setting: str) -> tuple[tuple[str, bytes], ...]:
    """The keys of JAGCALL_BLIND_INDEX_KEYS, parsed once per value of the setting (every lookup asks)."""
    parsed = []
    for item in setting.split(","):
        item = item.strip()
        if not item:
            continue
        version, _, encoded = item.partition(":")
        try:
            key = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise ImproperlyConfigured(f"JAGCALL_BLIND_INDEX_KEYS: key {version!r} is not base64") from None
        if len(key) < 32 or not version.isidentifier():
            raise ImproperlyConfigured(f"JAGCALL_BLIND_INDEX_KEYS: key {version!r} must be 'vN:<base64 of 32+ bytes>'")
        parsed.append((version, key))
    if not parsed:
        raise ImproperlyConfigured("JAGCALL_BLIND_INDEX_KEYS is empty")
    return tuple(parsed)


def _digest(key: bytes, *, purpose: str, organization_id, value: str) -> str:
    message = f"{purpose}|{organization_id}|{value}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def blind_index(value: str, *, purpose: str, organization_id) -> str:
    version, key = _keys()[0]
    return f"{version}${_digest(key, purpose=purpose, organization_id=organization_id, value=value)}"


def blind_index_candidates(value: str, *, purpose: str, organization_id) -> list[str]:
    """Every index ``value`` may be stored under (one per key version): filter with ``__in``."""
    return [
        f"{version}${_digest(key, purpose=purpose, organization_id=organization_id, value=value)}"
        for version, key in _keys()
    ]


def current_version() -> str:
    return _keys()[0][0]


class BlindIndexField(models.CharField):
    """Kept in step with an encrypted field ``source`` on every save.

    Usage: ``phone = EncryptedTextField(); phone_index = BlindIndexField(source="phone",
    normalize=normalize_phone)``, then ``Contact.objects.for_org(org).filter(
    phone_index__in=blind_index_candidates(...))`` — or ``Model.objects.lookup_blind(...)``.
    """

    def __init__(self, *args, source: str = "", purpose: str = "", normalize: Callable[[str], str] | None = None, **kwargs):
        self.source = source
        self.purpose = purpose
        self.normalize = normalize
        kwargs.setdefault("max_length", 80)
        kwargs.setdefault("editable", False)
        kwargs.setdefault("null", True)
        kwargs.setdefault("db_index", True)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["db_index"] = self.db_index  # its default is True, not Field's False: always say which
        kwargs["source"] = self.source
        if self.purpose:
            kwargs["purpose"] = self.purpose
        return name, path, args, kwargs

    def index_purpose(self) -> str:
        return self.purpose or f"{self.model._meta.label_lower}.{self.source}"

    def compute(self, instance, value) -> str | None:
        if value is None:
            return None
        text = self.normalize(value) if self.normalize else str(value)
        return blind_index(text, purpose=self.index_purpose(), organization_id=instance.organization_id)

    def candidates(self, value: str, *, organization_id) -> list[str]:
        text = self.normalize(value) if self.normalize else str(value)
        return blind_index_candidates(text, purpose=self.index_purpose(), organization_id=organization_id)

    def pre_save(self, model_instance, add):
        value = self.compute(model_instance, getattr(model_instance, self.source))
        setattr(model_instance, self.attname, value)
        return value
