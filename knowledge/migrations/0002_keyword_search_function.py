"""The search by words as a function of the tables' owner, so it can use the GIN index under row-level security.

[!!] Under row-level security PostgreSQL applies the policy before any qual that is not leakproof, and the
full-text operator (``@@``) is not: for the application's role the GIN index could not be used and every
search by words read the organization's whole partition (measured: 80 of the 100 ms of a search at 100k
chunks). ``knowledge_keyword_search`` runs as the owner, to whom the policy does not apply, and filters by
the very same setting the policy reads (``jagcall.organization_id``, set by ``organization_scope``): it
returns no more than the policy would let through, and nothing at all when no organization is named.
"""

from django.db import migrations

CREATE = """
CREATE FUNCTION knowledge_keyword_search(p_bases uuid[], p_query tsquery, p_limit integer)
RETURNS TABLE (id uuid, rank real)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
    SELECT c.id, ts_rank(c.search_terms, p_query) AS rank
    FROM knowledge_chunk AS c
    WHERE c.organization_id = NULLIF(current_setting('jagcall.organization_id', true), '')::uuid
      AND c.knowledge_base_id = ANY(p_bases)
      AND c.search_terms @@ p_query
    ORDER BY rank DESC, c.id
    LIMIT p_limit
$$
"""


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0001_initial")]

    operations = [
        migrations.RunSQL(CREATE, reverse_sql="DROP FUNCTION knowledge_keyword_search(uuid[], tsquery, integer)"),
    ]
