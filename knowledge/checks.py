"""Start-up check: row-level security on chunks holds for the application's database role.

Run by ``manage.py check --database default`` before web, worker and beat start (as compliance's role
check is). [!!] A role that owns the chunk table, is a superuser or has BYPASSRLS is not subject to the
table's policy, so the second wall of organization isolation (docs/security/knowledge.md) would be gone.
"""

from __future__ import annotations

from django.conf import settings
from django.core import checks
from django.db import connections


def chunk_security_problems(*, using: str = "default") -> list[str]:
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT to_regclass('knowledge_chunk') IS NOT NULL")
        if not cursor.fetchone()[0]:
            return []  # not migrated yet
        cursor.execute(
            """
            SELECT current_user, r.rolsuper, r.rolbypassrls, pg_has_role(current_user, c.relowner, 'USAGE'),
                   c.relrowsecurity
            FROM pg_roles r, pg_class c
            WHERE r.rolname = current_user AND c.oid = 'knowledge_chunk'::regclass
            """
        )
        user, superuser, bypass, owner, enabled = cursor.fetchone()
    problems = []
    if not enabled:
        problems.append("row-level security is off on knowledge_chunk")
    if superuser or bypass:
        problems.append(f"the role {user} bypasses row-level security ({'superuser' if superuser else 'BYPASSRLS'})")
    if owner:
        problems.append(f"the role {user} owns knowledge_chunk (or is a member of its owner)")
    return problems


def check_chunk_security(app_configs=None, databases=None, **kwargs) -> list:
    if not databases or "default" not in databases:
        return []
    problems = chunk_security_problems(using="default")
    if not problems:
        return []
    level = checks.Warning if settings.DEBUG else checks.Error
    return [
        level(
            "Knowledge chunks are not walled per organization for the application's database role: "
            + "; ".join(problems) + ".",
            hint="Connect web, worker and beat as a restricted role (DATABASE_URL) that owns no table and has "
            "NOBYPASSRLS, and run migrations as the owner (DATABASE_OWNER_URL); see docs/deploy.md.",
            id="knowledge.E001",
        )
    ]
