from django.apps import AppConfig


class CryptoConfig(AppConfig):
    name = "jagcall.kernel.crypto"
    label = "crypto"
    verbose_name = "Encryption keys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # [!!] Fail at start-up, not at the first read: a missing or malformed
        # master keyset stops every process with a message saying what to set.
        from jagcall.kernel.crypto import checks  # noqa: F401  (registers system checks)
        from jagcall.kernel.crypto.blind_index import current_version
        from jagcall.kernel.crypto.keys import master

        master.load()
        current_version()  # parses JAGCALL_BLIND_INDEX_KEYS
