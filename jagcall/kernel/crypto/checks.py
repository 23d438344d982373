"""System checks: the master keyset must open the keysets already stored."""

from django.core import checks


@checks.register(checks.Tags.database)
def master_keyset_matches_database(app_configs=None, databases=None, **kwargs):
    """``manage.py check --database default`` (run by the container entrypoint before serving)."""
    if not databases or "default" not in databases:
        return []  # like Django's own database checks: only when asked for
    from django.db import DatabaseError

    from jagcall.kernel.crypto import keys
    from jagcall.kernel.crypto.models import OrganizationKeyset

    try:
        row = OrganizationKeyset.objects.filter(destroyed_at__isnull=True).order_by("created_at").first()
    except DatabaseError:
        return []  # not migrated yet: nothing to check
    if row is None:
        return []
    try:
        keys.unwrap(row.aead_keyset, row.organization_id, "aead")
    except keys.KeyConfigurationError as exc:
        return [checks.Critical(str(exc), hint="Deploy the master keyset these keys were wrapped with.", id="crypto.E001")]
    return []
