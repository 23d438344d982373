"""Liveness and readiness for load balancers and orchestrators.

/healthz answers while the process can serve a request. /readyz checks
what a request needs: PostgreSQL, Redis, and that every migration is
applied; when one fails it answers 503 and names it.
"""

from __future__ import annotations

import logging
import time

from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


def _check_database() -> str | None:
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any failure means "not ready"
        return f"database unreachable: {type(exc).__name__}"
    return None


def _check_redis() -> str | None:
    try:
        client = cache._cache.get_client(None, write=True)  # the RedisCache's own connection pool
        client.ping()
    except Exception as exc:
        return f"redis unreachable: {type(exc).__name__}"
    return None


def _check_migrations() -> str | None:
    try:
        connection = connections[DEFAULT_DB_ALIAS]
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:
        return f"migrations could not be read: {type(exc).__name__}"
    if plan:
        return f"{len(plan)} migration(s) not applied"
    return None


CHECKS = {"database": _check_database, "redis": _check_redis, "migrations": _check_migrations}


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request):
    results, failing = {}, {}
    for name, check in CHECKS.items():
        if name == "migrations" and "database" in failing:
            results[name] = "skipped"
            continue
        started = time.monotonic()
        problem = check()
        results[name] = problem or "ok"
        if problem:
            failing[name] = problem
        logger.debug("readyz %s took %.1f ms", name, (time.monotonic() - started) * 1000)
    if failing:
        logger.warning("not ready: %s", failing)
        return JsonResponse({"status": "unavailable", "failing": sorted(failing), "checks": results}, status=503)
    return JsonResponse({"status": "ok", "checks": results})
