"""Row-level security on chunks: the organization a transaction may see.

[!!] ``knowledge_chunk`` has row-level security (migration 0001). The
application's database role (DATABASE_URL) sees, writes and deletes a chunk
only while the transaction's ``jagcall.organization_id`` names the chunk's
organization; with the setting unset it sees no chunk at all. Every read and
write of chunks therefore runs inside ``organization_scope(organization)``.
It is a second wall behind the selectors' own filter on the organization: a
query that forgot that filter still returns nothing of another organization.

The setting is local to the transaction (``set_config(..., true)``), so a
pooled connection never carries it to the next request, and it is put back
as it was when the block ends.
"""

from __future__ import annotations

from contextlib import contextmanager

from django.db import connection, transaction

SETTING = "jagcall.organization_id"


@contextmanager
def organization_scope(organization):
    """Run the block in a transaction that may see ``organization``'s chunks (and no one else's)."""
    organization_id = getattr(organization, "pk", organization)
    if not organization_id:
        raise ValueError("organization_scope needs an organization")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT current_setting(%s, true)", [SETTING])
        previous = cursor.fetchone()[0] or ""
        cursor.execute("SELECT set_config(%s, %s, true)", [SETTING, str(organization_id)])
        try:
            yield
        finally:
            if not connection.needs_rollback:
                cursor.execute("SELECT set_config(%s, %s, true)", [SETTING, previous])
