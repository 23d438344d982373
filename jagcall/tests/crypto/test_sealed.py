"""Sealed secrets: bound to purpose and owner, fail closed, and reading never creates keys."""

from __future__ import annotations

import pytest

from jagcall.kernel.crypto import sealed
from jagcall.kernel.crypto.errors import DecryptionError
from jagcall.kernel.crypto.models import PlatformKeyset

pytestmark = pytest.mark.django_db


def test_a_sealed_value_opens_only_for_its_purpose_and_owner():
    value = sealed.seal("JBSWY3DPEHPK3PXP", purpose="mfa", owner="user:1|totp|secret")
    assert value.startswith("jcs2:") and "JBSWY3DPEHPK3PXP" not in value
    assert sealed.unseal(value, purpose="mfa", owner="user:1|totp|secret") == "JBSWY3DPEHPK3PXP"
    for purpose, owner in (("mfa", "user:2|totp|secret"), ("mfa", "user:1|recovery_codes|seed"), ("other", "user:1|totp|secret")):
        with pytest.raises(DecryptionError, match="does not decrypt"):
            sealed.unseal(value, purpose=purpose, owner=owner)
    with pytest.raises(DecryptionError, match="not sealed for its owner"):
        sealed.unseal("JBSWY3DPEHPK3PXP", purpose="mfa", owner="user:1|totp|secret")


def test_unsealing_never_creates_the_keyset():
    assert not PlatformKeyset.objects.exists()
    with pytest.raises(DecryptionError, match="no sealing keys"):
        sealed.unseal("jcs2:AQAAAAAA", purpose="mfa", owner="user:1|totp|secret")
    assert sealed.primary_key_id() is None
    assert not PlatformKeyset.objects.exists()
    sealed.seal("x", purpose="mfa", owner="user:1|totp|secret")  # the first write creates it
    assert PlatformKeyset.objects.filter(name=sealed.NAME).exists()
