"""Two-factor authentication on django-allauth's MFA: our adapter and rules.

- TOTP secrets and the recovery-code seed are sealed by the encryption
  kernel (jagcall.kernel.crypto.sealed), never stored in clear, and bound to
  their row's owner: the user, the factor's type and the slot in its data
  (allauth keeps one TOTP and one recovery-code row per user). A sealed value
  copied onto another row does not decrypt; that factor then refuses every
  code (logged), never a server error. See "Sealing at the model layer".
- Recovery codes: 10 codes of 34 digits, i.e. about 113 bits each (ASVS asks
  112), derived from a sealed seed; each works once.
- TOTP: RFC 6238, 30 s steps, codes of the previous and next step accepted;
  a used code is refused for as long as it could still be valid (3 steps).
- Enabling or disabling a factor and using a recovery code email the person
  and are security events.
"""

from __future__ import annotations

import functools
import logging

from allauth.mfa.adapter import DefaultMFAAdapter
from django.core.cache import cache

from accounts.security_events import emit
from jagcall.kernel.crypto.errors import DecryptionError
from jagcall.kernel.crypto.registry import register_sealed_source as register_with_kernel
from jagcall.kernel.crypto.sealed import is_sealed, seal, unseal

logger = logging.getLogger(__name__)

PURPOSE = "mfa"


class MFAAdapter(DefaultMFAAdapter):
    # allauth hands these only the text; the row that owns it is known to the
    # values themselves (see "Sealing at the model layer" below).
    def encrypt(self, text: str) -> str:
        return _Pending(text)

    def decrypt(self, encrypted_text: str) -> str:
        if isinstance(encrypted_text, _Pending):
            return encrypted_text.plaintext
        if isinstance(encrypted_text, _Owned):
            return unseal(encrypted_text, purpose=PURPOSE, owner=encrypted_text.owner, allow_unbound=True)
        raise DecryptionError("a second-factor secret reached decrypt() without the authenticator row it belongs to")

    def get_totp_issuer(self) -> str:
        return "JagCall"

    def send_notification_mail(self, template_prefix, user, context=None, email=None):
        return super().send_notification_mail(template_prefix, user, context, email)


def _mark_totp_code_used(self, code: str) -> bool:
    """A code stays valid for up to (2 x tolerance + 1) steps: refuse its reuse for all of them."""
    from allauth.mfa import app_settings

    window = app_settings.TOTP_PERIOD * (2 * app_settings.TOTP_TOLERANCE + 1)
    return cache.add(self._get_used_cache_key(code), "y", timeout=window)


def install_totp_reuse_guard() -> None:
    from allauth.mfa.totp.internal.auth import TOTP

    TOTP._mark_code_used = _mark_totp_code_used


# --- Sealing at the model layer ----------------------------------------------------------
#
# allauth builds an authenticator's data with encrypt() before the row exists
# and calls decrypt() with nothing but the stored text, so the owner cannot be
# known inside the adapter. The row knows it: a value loaded from a row is
# tagged with that row's owner (post_init), and a value allauth just encrypted
# is held in memory until its row is saved, when it is sealed for that row's
# owner (pre_save). [!!] The owner therefore always comes from the row the
# ciphertext was read from, so a ciphertext copied onto another user's row is
# opened with that other owner and fails.

SLOTS = ("secret", "seed")  # one sealed value each
LIST_SLOTS = ("migrated_codes",)  # a list of sealed values
SEALED_TYPES = ("totp", "recovery_codes")
_PLACEHOLDER = "jcs-pending:"


class _Pending(str):
    """A secret allauth just encrypted, held in memory until its row is saved.

    Its text is a placeholder, never the secret: if it reached the database by
    a path that skips pre_save, the factor would not work, but nothing leaks.
    """

    def __new__(cls, plaintext: str):
        value = super().__new__(cls, _PLACEHOLDER)
        value.plaintext = plaintext
        return value

    def __reduce__(self):
        return (str, (_PLACEHOLDER,))  # never pickle the secret (caches, sessions)


class _Owned(str):
    """A sealed value as read from its row, carrying that row's owner."""

    def __new__(cls, sealed: str, owner: str):
        value = super().__new__(cls, sealed)
        value.owner = owner
        return value

    def __reduce__(self):
        return (_Owned, (str(self), self.owner))


def owner_of(authenticator, slot: str) -> str:
    return f"user:{authenticator.user_id}|{authenticator.type}|{slot}"


def _map_sealed(authenticator, convert) -> None:
    data = authenticator.__dict__.get("data")
    if not isinstance(data, dict) or authenticator.type not in SEALED_TYPES:
        return
    for slot in SLOTS:
        if isinstance(data.get(slot), str):
            data[slot] = convert(data[slot], owner_of(authenticator, slot))
    for slot in LIST_SLOTS:
        if isinstance(data.get(slot), list):
            data[slot] = [convert(v, owner_of(authenticator, slot)) if isinstance(v, str) else v for v in data[slot]]


def _tag_loaded(sender, instance, **kwargs) -> None:
    if "data" not in instance.__dict__:
        return  # deferred: tagged when it is loaded

    def tag(value, owner):
        return value if isinstance(value, (_Pending, _Owned)) else _Owned(value, owner)

    _map_sealed(instance, tag)


def _seal_before_save(sender, instance, update_fields=None, **kwargs) -> None:
    if update_fields is not None and "data" not in update_fields:
        return

    def sealed_for_row(value, owner):
        if isinstance(value, _Pending):
            return _Owned(seal(value.plaintext, purpose=PURPOSE, owner=owner), owner)
        if isinstance(value, _Owned) and value.owner == owner and value.startswith("jcs2:"):
            return value
        if isinstance(value, _Owned) and value.owner == owner and is_sealed(value):
            # Sealed before owners were bound (jcs1): bind it now, on this save.
            return _Owned(seal(unseal(value, purpose=PURPOSE, owner=owner, allow_unbound=True), purpose=PURPOSE, owner=owner), owner)
        raise DecryptionError(
            f"refusing to store a second-factor secret of {owner} that is not sealed for this row"
        )

    _map_sealed(instance, sealed_for_row)


def _refuse_unreadable(fallback):
    """[!!] A factor whose sealed secret does not decrypt refuses every code; it never raises into a page."""

    def decorate(method):
        @functools.wraps(method)
        def guarded(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except DecryptionError as error:
                instance = self.instance
                logger.error(
                    "The %s factor (authenticator %s) of user %s cannot be used: %s. Its codes are refused; the person "
                    "can sign in with another factor or a recovery code, or support removes this factor so they enrol again.",
                    instance.type, instance.pk, instance.user_id, error,
                )
                return fallback()

        guarded.jagcall_fail_closed = True
        return guarded

    return decorate


def _install_fail_closed_guards() -> None:
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
    from allauth.mfa.totp.internal.auth import TOTP

    for cls, name, fallback in (
        (TOTP, "validate_code", lambda: False),
        (RecoveryCodes, "generate_codes", list),  # no codes: none validates, the page lists none
        (RecoveryCodes, "_get_migrated_codes", list),
    ):
        method = getattr(cls, name)
        if not getattr(method, "jagcall_fail_closed", False):
            setattr(cls, name, _refuse_unreadable(fallback)(method))


# --- sealed secrets this app keeps (for reencrypt and key retirement) -------------------


def _authenticators():
    from allauth.mfa.models import Authenticator

    return Authenticator.objects.filter(type__in=SEALED_TYPES).order_by("pk")


def _sealed_values(authenticator) -> list[str]:
    data = authenticator.data or {}
    values = [data[k] for k in SLOTS if isinstance(data.get(k), str)]
    for slot in LIST_SLOTS:
        values += [c for c in data.get(slot) or [] if isinstance(c, str)]
    return values


def _reseal(authenticator) -> None:
    """Seal every value again for its row under the primary key (pre_save does the sealing)."""

    def reopen(value, owner):
        return _Pending(unseal(value, purpose=PURPOSE, owner=owner, allow_unbound=True))

    _map_sealed(authenticator, reopen)
    authenticator.save(update_fields=["data"])


def register_sealed_source() -> None:
    """Seal second-factor secrets for their row, fail closed, and tell the kernel where they are."""
    from allauth.mfa.models import Authenticator
    from django.db.models.signals import post_init, pre_save

    post_init.connect(_tag_loaded, sender=Authenticator, weak=False, dispatch_uid="jagcall-mfa-tag-sealed")
    pre_save.connect(_seal_before_save, sender=Authenticator, weak=False, dispatch_uid="jagcall-mfa-seal")
    _install_fail_closed_guards()
    register_with_kernel("mfa-authenticators", iterate=_authenticators, values=_sealed_values, reseal=_reseal)


# --- security events ------------------------------------------------------------------------


def connect_signals() -> None:
    from allauth.mfa import signals

    def rotate_session(request):
        # A change of how strongly this session is authenticated gets a new session id.
        if request is not None and hasattr(request, "session") and request.session.session_key:
            request.session.cycle_key()

    def added(sender, request, user, authenticator, **kwargs):
        emit("user.mfa_enabled", request=request, user=user, factor=authenticator.type)
        rotate_session(request)

    def removed(sender, request, user, authenticator, **kwargs):
        emit("user.mfa_disabled", request=request, user=user, factor=authenticator.type)
        rotate_session(request)

    def used(sender, request, user, authenticator, **kwargs):
        if authenticator.type == "recovery_codes":
            emit("user.mfa_recovery_code_used", request=request, user=user, factor=authenticator.type)
            from allauth.account.adapter import get_adapter

            get_adapter(request).send_notification_mail("mfa/email/recovery_code_used", user)
        else:
            emit("user.mfa_used", request=request, user=user, factor=authenticator.type)

    def reset(sender, request, user, authenticator, **kwargs):
        emit("user.mfa_recovery_codes_regenerated", request=request, user=user, factor=authenticator.type)

    def failed(sender, request, user, **kwargs):
        emit("user.mfa_failed", request=request, user=user, reauthentication=bool(kwargs.get("reauthentication")))

    signals.authenticator_added.connect(added, weak=False)
    signals.authenticator_removed.connect(removed, weak=False)
    signals.authenticator_used.connect(used, weak=False)
    signals.authenticator_reset.connect(reset, weak=False)
    signals.authentication_failed.connect(failed, weak=False)
    _connect_passkey_rename()


def _connect_passkey_rename() -> None:
    """allauth sends no signal when a passkey is renamed; its row's save tells us."""
    from allauth.mfa.models import Authenticator
    from django.db.models.signals import post_save

    def saved(sender, instance, created, update_fields=None, **kwargs):
        if created or instance.type != Authenticator.Type.WEBAUTHN:
            return
        from allauth.core import context

        request = context.request
        match = getattr(request, "resolver_match", None)
        if match is None or match.url_name != "mfa_edit_webauthn":
            return  # a use (last_used_at) or a re-encryption, not a rename
        emit("user.mfa_key_renamed", request=request, user=instance.user, factor=instance.type, name=instance.wrap().name)

    post_save.connect(saved, sender=Authenticator, weak=False, dispatch_uid="jagcall-passkey-renamed")


def user_has_two_factor(user) -> bool:
    from allauth.mfa.utils import is_mfa_enabled

    return bool(user and user.is_authenticated and is_mfa_enabled(user))
