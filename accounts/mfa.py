"""Two-factor authentication on django-allauth's MFA: our adapter and rules.

- TOTP secrets and the recovery-code seed are sealed by the encryption
  kernel (jagcall.kernel.crypto.sealed), never stored in clear.
- Recovery codes: 10 codes of 34 digits, i.e. about 113 bits each (ASVS asks
  112), derived from a sealed seed; each works once.
- TOTP: RFC 6238, 30 s steps, codes of the previous and next step accepted;
  a used code is refused for as long as it could still be valid (3 steps).
- Enabling or disabling a factor and using a recovery code email the person
  and are security events.
"""

from __future__ import annotations

from allauth.mfa.adapter import DefaultMFAAdapter
from django.core.cache import cache

from accounts.security_events import emit
from jagcall.kernel.crypto.sealed import seal, unseal

PURPOSE = "mfa"


class MFAAdapter(DefaultMFAAdapter):
    def encrypt(self, text: str) -> str:
        return seal(text, purpose=PURPOSE)

    def decrypt(self, encrypted_text: str) -> str:
        return unseal(encrypted_text, purpose=PURPOSE)

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


# --- sealed secrets this app keeps (for reencrypt and key retirement) -------------------


def _authenticators():
    from allauth.mfa.models import Authenticator

    return Authenticator.objects.filter(type__in=[Authenticator.Type.TOTP, Authenticator.Type.RECOVERY_CODES])


def _sealed_values(authenticator) -> list[str]:
    data = authenticator.data or {}
    values = [data[k] for k in ("secret", "seed") if isinstance(data.get(k), str)]
    values += [c for c in data.get("migrated_codes") or [] if isinstance(c, str)]
    return values


def _key_ids(authenticator):
    from jagcall.kernel.crypto.sealed import sealed_key_id

    return [sealed_key_id(v) for v in _sealed_values(authenticator)]


def _reseal(authenticator) -> None:
    data = dict(authenticator.data)
    for key in ("secret", "seed"):
        if isinstance(data.get(key), str):
            data[key] = seal(unseal(data[key], purpose=PURPOSE), purpose=PURPOSE)
    if data.get("migrated_codes"):
        data["migrated_codes"] = [seal(unseal(c, purpose=PURPOSE), purpose=PURPOSE) for c in data["migrated_codes"]]
    authenticator.data = data
    authenticator.save(update_fields=["data"])


def register_sealed_source() -> None:
    from jagcall.kernel.crypto.sealed import register_source

    register_source("mfa-authenticators", iterate=_authenticators, reseal=_reseal, key_ids=_key_ids)


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
