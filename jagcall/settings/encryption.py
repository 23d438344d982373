"""Encryption keys for the kernel (jagcall/kernel/crypto, docs/security/encryption.md)."""

from __future__ import annotations

import secrets

from django.core.exceptions import ImproperlyConfigured

from jagcall.kernel.env import env
from jagcall.settings.core import DATA_DIR, EMBEDDED_SERVICES_ALLOWED, _development_secret, _require_in_production

# --- encryption keys (jagcall/kernel/crypto, docs/security/encryption.md) -------------
# The master keyset wraps every organization's data keysets. Give exactly one:
# a Tink AES256_GCM keyset as JSON, a file holding it, or a KMS key URI.
JAGCALL_MASTER_KEYSET = env("JAGCALL_MASTER_KEYSET", default="")
JAGCALL_MASTER_KEYSET_FILE = env("JAGCALL_MASTER_KEYSET_FILE", default="")
JAGCALL_MASTER_KEY_URI = env("JAGCALL_MASTER_KEY_URI", default="")
JAGCALL_KMS_CREDENTIALS_FILE = env("JAGCALL_KMS_CREDENTIALS_FILE", default="")
# Blind-index keys (keyed HMAC for exact lookups of encrypted values):
# "v2:<base64 32 bytes>,v1:<base64 32 bytes>", newest first.
JAGCALL_BLIND_INDEX_KEYS = env("JAGCALL_BLIND_INDEX_KEYS", default="")
JAGCALL_KEY_CACHE_SECONDS = env("JAGCALL_KEY_CACHE_SECONDS", default=60, cast=int)
_master_sources = [bool(JAGCALL_MASTER_KEYSET), bool(JAGCALL_MASTER_KEYSET_FILE), bool(JAGCALL_MASTER_KEY_URI)]
if sum(_master_sources) > 1:
    raise ImproperlyConfigured(
        "Set only one of JAGCALL_MASTER_KEYSET, JAGCALL_MASTER_KEYSET_FILE and JAGCALL_MASTER_KEY_URI."
    )
# In development the keys are generated under DATA_DIR on first use.
JAGCALL_GENERATE_DEV_KEYS = EMBEDDED_SERVICES_ALLOWED and not any(_master_sources)
if not EMBEDDED_SERVICES_ALLOWED and not any(_master_sources):
    raise ImproperlyConfigured(
        "A master keyset is required when DEBUG is off: set JAGCALL_MASTER_KEYSET (Tink JSON), "
        "JAGCALL_MASTER_KEYSET_FILE or JAGCALL_MASTER_KEY_URI. Make one with "
        "`python -m jagcall.kernel.crypto.keygen master` (see docs/security/encryption.md)."
    )
if JAGCALL_GENERATE_DEV_KEYS:
    JAGCALL_MASTER_KEYSET_FILE = str(DATA_DIR / "master_keyset.json")
_require_in_production("JAGCALL_BLIND_INDEX_KEYS")
if not JAGCALL_BLIND_INDEX_KEYS and EMBEDDED_SERVICES_ALLOWED:
    import base64 as _b64

    JAGCALL_BLIND_INDEX_KEYS = _development_secret(
        "blind_index_keys", lambda: "v1:" + _b64.b64encode(secrets.token_bytes(32)).decode()
    )
